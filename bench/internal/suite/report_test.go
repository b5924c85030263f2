package suite

import (
	"math"
	"testing"
)

func TestFmtRatio(t *testing.T) {
	for _, c := range []struct {
		r    float64
		want string
	}{
		{math.NaN(), "n/a"},
		{0, "0.00x"},
		{0.00052, "0.00052x"},
		{0.0123, "0.01x"},
		{0.93, "0.93x"},
		{13.84, "13.8x"},
		{107.4, "107x"},
	} {
		if got := fmtRatio(c.r); got != c.want {
			t.Errorf("fmtRatio(%v) = %q, want %q", c.r, got, c.want)
		}
	}
}
