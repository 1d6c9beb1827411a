package state_test

import (
	"path/filepath"
	"testing"

	"github.com/monitord/monitord/internal/state"
	"github.com/monitord/monitord/internal/state/statetest"
)

func TestStoreConformance(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) {
		statetest.Run(t, func(t *testing.T) statetest.Opener {
			path := filepath.Join(t.TempDir(), "s.db")
			return func() statetest.Store {
				db, err := state.Open(path, state.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return db
			}
		})
	})
	t.Run("memory", func(t *testing.T) {
		statetest.Run(t, func(t *testing.T) statetest.Opener {
			m, err := state.NewMemory(state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return func() statetest.Store { return m }
		})
	})
}
