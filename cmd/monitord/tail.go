package main

import (
	"context"
	"errors"
	"io"
)

func cmdTail(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("tail: not implemented yet")
}
