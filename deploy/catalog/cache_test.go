package catalog

import (
	"testing"
	"testing/fstest"
	"time"
)

// BenchmarkCatalogParsedOnce compares, in one run, what `/toolbox catalog`
// costs when every call parses every Compose file (a fresh catalog each
// time) and when the catalog parses them once (one catalog, reused): the
// ratio is reported as parse-each-time/parsed-once.
func BenchmarkCatalogParsedOnce(b *testing.B) {
	const fresh = 20
	start := time.Now()
	for range fresh {
		if _, err := New(nil).All(); err != nil {
			b.Fatal(err)
		}
	}
	perFresh := time.Since(start) / fresh
	c := New(nil)
	if _, err := c.All(); err != nil { // the one parse, at start
		b.Fatal(err)
	}
	b.ResetTimer()
	start = time.Now()
	n := 0
	for b.Loop() {
		if _, err := c.All(); err != nil {
			b.Fatal(err)
		}
		n++
	}
	perCached := time.Since(start) / time.Duration(max(n, 1))
	b.ReportMetric(float64(perFresh.Nanoseconds()), "ns/parse-each-time")
	b.ReportMetric(float64(perFresh)/float64(max(perCached, 1)), "ratio")
}

func TestCatalogIsParsedOnce(t *testing.T) {
	files := fstest.MapFS{}
	c := New(files)
	before, err := c.All()
	if err != nil {
		t.Fatal(err)
	}
	// A file added later is not seen: the catalog was read at its first use.
	files["late.yaml"] = &fstest.MapFile{Data: []byte("services: {}")}
	after, err := c.All()
	if err != nil || len(after) != len(before) {
		t.Fatalf("All after a new file = %d apps, %v; want the same %d apps", len(after), err, len(before))
	}
	// What callers get is theirs: changing it changes nothing for the next.
	wp, err := c.Get("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	want := wp.Secrets[0].Name
	wp.Secrets[0].Name = "CHANGED"
	wp.Dumps[0].Command[0] = "CHANGED"
	wp.Name = "CHANGED"
	again, err := c.Get("wordpress")
	if err != nil || again.Secrets[0].Name != want || again.Dumps[0].Command[0] == "CHANGED" || again.Name != "wordpress" {
		t.Errorf("Get after the caller changed its copy = %+v, %v; want the catalog's own", again, err)
	}
	all, _ := c.All()
	all[0].Settings = nil
	if again, _ := c.All(); len(again[0].Settings) == 0 && len(before[0].Settings) != 0 {
		t.Errorf("All's slice is shared with the catalog")
	}
}
