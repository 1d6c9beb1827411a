package main

import (
	"context"
	"errors"
	"io"
)

func cmdRun(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("run: not implemented yet")
}
