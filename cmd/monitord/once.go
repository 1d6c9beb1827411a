package main

import (
	"context"
	"errors"
	"io"
)

func cmdOnce(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("once: not implemented yet")
}
