package main

import (
	"context"
	"errors"
	"io"
)

func cmdSimulate(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("simulate: not implemented yet")
}
