package seed

import (
	"context"
	"io"

	"github.com/shiftcast/shiftcast/store"
)

// RunSized is Run with shrunken sizes: shifts random shifts for the challenge
// profile, scale × every count for the marketplace profile.
func RunSized(ctx context.Context, st *store.Store, opts Options, out io.Writer, shifts int, scale float64) error {
	return run(ctx, st, opts, out, sizes{shifts: shifts, scale: scale})
}

// GenerateSized is Generate with shrunken sizes, as RunSized.
func GenerateSized(opts Options, shifts int, scale float64) (Dataset, error) {
	return generate(opts, sizes{shifts: shifts, scale: scale})
}
