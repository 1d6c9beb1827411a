package admin

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// ParseMetrics reads Prometheus text exposition, as /metrics serves it, into
// "name{labels}" → value, labels kept as written
// (`monitord_polls_total{result="ok"}`). Comments and lines without a
// number are skipped. It is what the scale harness and the end-to-end
// scenarios read the daemon's figures with.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}
