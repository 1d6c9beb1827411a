package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/monitord/monitord/internal/proxy"
)

const examplePath = "../../config.example.yaml"

// TestExampleIsDefaults loads config.example.yaml and expects exactly the
// defaults plus the example's placeholders, so the file cannot drift from
// the code. The API key secret comes from a systemd credentials directory,
// as the example recommends.
func TestExampleIsDefaults(t *testing.T) {
	creds := t.TempDir()
	writeFile(t, filepath.Join(creds, CredTwilioAPIKeySecret), "example-secret\n")
	got, err := Load(examplePath, []string{"CREDENTIALS_DIRECTORY=" + creds}, nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", examplePath, err)
	}

	want := Default()
	want.resolveDerived(nil)
	want.Twilio.AccountSID = "AC00000000000000000000000000000000"
	want.Twilio.APIKeySID = "SK00000000000000000000000000000000"
	want.Twilio.APIKeySecret = "example-secret"
	want.Targets = []Target{{
		Source:         proxy.SourceParticipant,
		ServiceSID:     "KS00000000000000000000000000000000",
		SessionSID:     "KC00000000000000000000000000000000",
		ParticipantSID: "KP00000000000000000000000000000000",
	}}
	want.Discover = []Discover{{
		ServiceSID: "KS11111111111111111111111111111111",
		Source:     DefaultSource,
		Schedule:   DefaultDiscoverSchedule,
		Grace:      DefaultDiscoverGrace,

		ParticipantRefreshEvery: DefaultParticipantRefreshEvery,
	}}
	if diff := cmp.Diff(&want, got, cmpopts.EquateEmpty(), cmp.AllowUnexported(Config{})); diff != "" {
		t.Errorf("example differs from Default() plus placeholders (-want +got):\n%s", diff)
	}
}

// TestExampleListsEveryKey walks the Config type and expects each key in
// the example (list items: in its first item; accounts is documented in
// comments), so that a new field cannot be left out of the documentation.
func TestExampleListsEveryKey(t *testing.T) {
	b, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.Parser().Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(path string, typ reflect.Type, m map[string]any)
	walk = func(path string, typ reflect.Type, m map[string]any) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue // state Load keeps, not a key
			}
			key := f.Tag.Get("koanf")
			v, ok := m[key]
			if !ok {
				missing = append(missing, join(path, key))
				continue
			}
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != durationType:
				sub, _ := v.(map[string]any)
				walk(join(path, key), f.Type, sub)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct && key != "accounts":
				items, _ := v.([]any)
				if len(items) == 0 {
					missing = append(missing, join(path, key)+"[0]")
					continue
				}
				sub, _ := items[0].(map[string]any)
				walk(join(path, key)+"[0]", f.Type.Elem(), sub)
			}
		}
	}
	walk("", reflect.TypeFor[Config](), raw)
	if len(missing) > 0 {
		t.Errorf("config.example.yaml lacks keys:\n%s", strings.Join(missing, "\n"))
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
