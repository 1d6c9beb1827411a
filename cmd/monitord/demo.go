package main

import (
	"context"
	"errors"
	"io"
)

func cmdDemo(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("demo: not implemented yet")
}
