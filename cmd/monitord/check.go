package main

import (
	"context"
	"errors"
	"io"
)

func cmdCheck(context.Context, []string, io.Writer, io.Writer) error {
	return errors.New("check: not implemented yet")
}
