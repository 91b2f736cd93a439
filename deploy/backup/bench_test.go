package backup

// BenchmarkBackup runs the real restic (see needRestic) on a synthetic app
// volume and reports each phase as a ratio to a baseline measured in the
// same run, never as a time to meet:
//
//	go test -run '^$' -bench BenchmarkBackup -benchtime 1x -timeout 60m ./deploy/backup/
//
// TOOLBOX_BENCH_BYTES is the volume's size: bytes, or with a K, M or G
// suffix (binary); 1G by default, which takes a few minutes on two cores
// and about 3 GiB of disk under $TMPDIR. TOOLBOX_BENCH_BYTES=64M tries it
// in half a minute. The metrics (ns/op is only the time spent in tar and
// restic):
//
//	first/tar-zstd  the first backup next to `tar -cf - . | zstd -1` of the
//	                data (aim ≤ 2; left out, with a log line, without zstd)
//	second/first    a backup with nothing changed (aim ≤ 0.1)
//	repo/data       the repository after 30 daily backups at 1% churn a day,
//	                next to the data (aim ≤ 1.5)
//	restore/first   restoring the latest snapshot into an empty volume
//
// The volume is half text, half random bytes (uploads), in files of 512 B
// to 32 MiB. A day's churn is text edited in place or appended to, files
// replaced whole, and files removed while others come, until 1% of the
// bytes is written. The repository is as in production: a local folder (a
// volume), no cache, restic's own flags and key derivation (half a second
// of every run).

import (
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	benchVolume   = "app_data"
	benchDays     = 30
	benchChurn    = 0.01 // of the bytes rewritten each day
	benchTextFrac = 0.5  // of the bytes in compressible text files
)

// BenchmarkBackup: see the top of the file.
func BenchmarkBackup(b *testing.B) {
	size, err := benchBytes(os.Getenv("TOOLBOX_BENCH_BYTES"))
	if err != nil {
		b.Fatal(err)
	}
	bin := needRestic(b)
	zstd, zerr := exec.LookPath("zstd")
	if zerr != nil {
		b.Log("zstd is missing (Debian: apt-get install zstd): no first/tar-zstd metric")
	}
	var sum struct{ firstTar, secondFirst, repoData, restoreFirst float64 }
	for range b.N {
		b.StopTimer()
		r := runBackupScenario(b, bin, zstd, size)
		sum.firstTar += r.first.Seconds() / r.tarZstd.Seconds()
		sum.secondFirst += r.second.Seconds() / r.first.Seconds()
		sum.repoData += float64(r.repoBytes) / float64(r.dataBytes)
		sum.restoreFirst += r.restore.Seconds() / r.first.Seconds()
	}
	n := float64(b.N)
	if zstd != "" {
		b.ReportMetric(sum.firstTar/n, "first/tar-zstd")
	}
	b.ReportMetric(sum.secondFirst/n, "second/first")
	b.ReportMetric(sum.repoData/n, "repo/data")
	b.ReportMetric(sum.restoreFirst/n, "restore/first")
}

// scenarioResult is one run of the scenario: the phases' durations and the
// sizes at its end.
type scenarioResult struct {
	tarZstd, first, second, daily, restore time.Duration
	dataBytes, repoBytes                   int64
}

// runBackupScenario makes a volume of size bytes, backs it up, backs it up
// again unchanged, then once a day for benchDays days of churn, and
// restores the latest snapshot. The benchmark's timer runs only around
// tar, restic backup and restic restore; it is stopped on return.
func runBackupScenario(b *testing.B, bin, zstd string, size int64) scenarioResult {
	ctx := b.Context()
	dir, err := os.MkdirTemp("", "toolbox-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l := &localRunner{bin: bin, dir: dir}
	repo := &Repository{
		URL:      "/repository",
		Password: "correct horse battery staple",
		Mounts:   []Mount{{Volume: repoVolume, Target: "/repository"}},
		Runner:   l,
	}
	if _, err := repo.Init(ctx); err != nil {
		b.Fatal(err)
	}
	vol := newSynthVolume(l.volume(benchVolume), 1)
	start := time.Now()
	if err := vol.fill(size); err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
	b.Logf("made %d files, %s, in %v", len(vol.files), benchSize(vol.total), time.Since(start).Round(time.Millisecond))

	var res scenarioResult
	timed := func(phase *time.Duration, f func() error) {
		b.StartTimer()
		t := time.Now()
		err := f()
		*phase += time.Since(t)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
	}
	if zstd != "" {
		timed(&res.tarZstd, func() error {
			cmd := exec.CommandContext(ctx, "bash", "-c", `set -o pipefail; tar -C "$1" -cf - . | "$2" -1 > /dev/null`, "bash", vol.dir, zstd)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("tar | zstd: %v: %s", err, out)
			}
			return nil
		})
	}
	day0 := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)
	backup := func(phase *time.Duration, at time.Time) Summary {
		var s Summary
		timed(phase, func() (err error) {
			s, err = repo.Backup(ctx, BackupSpec{Volumes: []string{benchVolume}, Time: at}, nil)
			return err
		})
		return s
	}
	first := backup(&res.first, day0)
	second := backup(&res.second, day0.Add(time.Hour))
	b.Logf("tar | zstd -1 %v; first backup %v (%s added, %s stored); unchanged %v (%s added)",
		res.tarZstd.Round(time.Millisecond), res.first.Round(time.Millisecond), benchSize(int64(first.DataAdded)),
		benchSize(int64(first.DataAddedPacked)), res.second.Round(time.Millisecond), benchSize(int64(second.DataAdded)))

	var churned int64
	for day := 1; day <= benchDays; day++ {
		n, err := vol.churn(int64(benchChurn * float64(vol.total)))
		if err != nil {
			b.Fatal(err)
		}
		churned += n
		syscall.Sync()
		backup(&res.daily, day0.AddDate(0, 0, day))
	}
	res.dataBytes = vol.total
	if res.repoBytes, err = treeBytes(l.volume(repoVolume)); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d days: %s rewritten, %v a backup; data %s in %d files, repository %s",
		benchDays, benchSize(churned), (res.daily / benchDays).Round(time.Millisecond),
		benchSize(res.dataBytes), len(vol.files), benchSize(res.repoBytes))

	var restored RestoreSummary
	timed(&res.restore, func() (err error) {
		restored, err = repo.Restore(ctx, RestoreSpec{Snapshot: "latest", From: VolumePath(benchVolume), Volume: "app_restored"}, nil)
		return err
	})
	if restored.BytesRestored != uint64(res.dataBytes) {
		b.Fatalf("restored %d bytes, want the volume's %d", restored.BytesRestored, res.dataBytes)
	}
	b.Logf("restore %v", res.restore.Round(time.Millisecond))
	return res
}

// benchBytes parses TOOLBOX_BENCH_BYTES: "" is 1 GiB.
func benchBytes(s string) (int64, error) {
	if s == "" {
		return 1 << 30, nil
	}
	shift := 0
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	}
	if shift > 0 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 1<<(62-shift) {
		return 0, fmt.Errorf("TOOLBOX_BENCH_BYTES=%q: want a size in bytes, or with K, M or G (64M)", s)
	}
	return n << shift, nil
}

func benchSize(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// treeBytes is the size of the files below dir.
func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	})
	return n, err
}

// synthVolume is a synthetic app volume: text files (code, pages, logs:
// zstd makes them a quarter or so) beside random-byte files (uploads: they
// do not compress), generated deterministically from a seed.
type synthVolume struct {
	dir   string
	rng   *rand.Rand
	files []benchFile
	total int64 // the files' size
	made  int   // files made so far, for new names
}

type benchFile struct {
	path string // relative to dir
	size int64
	text bool
}

func newSynthVolume(dir string, seed uint64) *synthVolume {
	return &synthVolume{dir: dir, rng: rand.New(rand.NewPCG(seed, 0x70_01_b0_c5))}
}

// logUniform is a size between lo and hi, uniform in its logarithm: many
// small files, a few large ones.
func (v *synthVolume) logUniform(lo, hi int64) int64 {
	f := float64(lo) * math.Pow(float64(hi)/float64(lo), v.rng.Float64())
	return int64(f)
}

// newSize is a new file's size: text files of 512 B to 4 MiB, uploads of
// 16 KiB to 32 MiB.
func (v *synthVolume) newSize(text bool) int64 {
	if text {
		return v.logUniform(512, 4<<20)
	}
	return v.logUniform(16<<10, 32<<20)
}

// fill adds files until the volume holds size bytes, benchTextFrac of them
// in text files.
func (v *synthVolume) fill(size int64) error {
	var text int64
	for v.total < size {
		isText := float64(text) < benchTextFrac*float64(v.total+1)
		n := min(v.newSize(isText), size-v.total)
		if err := v.add(isText, n); err != nil {
			return err
		}
		if isText {
			text += n
		}
	}
	return nil
}

// add makes a new file of n bytes.
func (v *synthVolume) add(text bool, n int64) error {
	v.made++
	var p string
	if text {
		p = fmt.Sprintf("site/d%02d/page-%05d.txt", v.made%37, v.made)
	} else {
		p = fmt.Sprintf("uploads/%d/%02d/img-%05d.bin", 2020+v.made%6, 1+v.made%12, v.made)
	}
	full := filepath.Join(v.dir, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(full, v.content(text, n), 0o644); err != nil {
		return err
	}
	v.files = append(v.files, benchFile{path: p, size: n, text: text})
	v.total += n
	return nil
}

// churn rewrites about budget bytes, as a day of an app's life: text
// edited in place or appended to, files replaced, files added while others
// go. It returns the bytes written.
func (v *synthVolume) churn(budget int64) (int64, error) {
	var written int64
	for tries := 0; written < budget && tries < 1_000_000; tries++ {
		left := budget - written
		i := v.rng.IntN(len(v.files))
		f := &v.files[i]
		full := filepath.Join(v.dir, f.path)
		op := v.rng.IntN(10)
		if op < 5 && !f.text {
			continue // uploads are not edited: they go, or are replaced whole
		}
		switch {
		case op < 4: // an edit: a few KiB rewritten in place
			n := min(v.logUniform(1<<10, 64<<10), f.size, left)
			off := v.rng.Int64N(f.size - n + 1)
			if err := writeAt(full, v.content(true, n), off, false); err != nil {
				return written, err
			}
			written += n
		case op < 5: // a log's new lines
			n := min(v.logUniform(1<<10, 256<<10), left)
			if err := writeAt(full, v.content(true, n), 0, true); err != nil {
				return written, err
			}
			f.size += n
			v.total += n
			written += n
		case op < 7: // replaced whole
			if f.size > left {
				continue
			}
			if err := os.WriteFile(full, v.content(f.text, f.size), 0o644); err != nil {
				return written, err
			}
			written += f.size
		default: // one file removed, another of its kind added
			// Both sizes are of files no larger than left, drawn alike: the
			// volume keeps its size.
			n := v.newSize(f.text)
			if f.size > left || n > left {
				continue
			}
			if err := os.Remove(full); err != nil {
				return written, err
			}
			text := f.text
			v.total -= f.size
			v.files[i] = v.files[len(v.files)-1]
			v.files = v.files[:len(v.files)-1]
			if err := v.add(text, n); err != nil {
				return written, err
			}
			written += n
		}
	}
	return written, nil
}

func writeAt(path string, b []byte, off int64, appending bool) error {
	flag := os.O_WRONLY
	if appending {
		flag |= os.O_APPEND
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return err
	}
	if appending {
		_, err = f.Write(b)
	} else {
		_, err = f.WriteAt(b, off)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// benchWords are the text files' vocabulary.
var benchWords = strings.Fields(`the of and to in is that for it as with was on be by this are or at from
	an which have not has but had they were their one all we can her been there if more when will would who
	so no about out up into do only other time some could them than then now these two may first new like
	user page post comment admin login session request response error warning info debug config value key
	table select insert update delete where order group limit index primary null true false string number
	function return var const let class public private static void import export package module require
	div span href src img alt title meta link script style body head html json xml yaml http https www
	2026 01 02 03 04 05 06 07 08 09 10 11 12 GET POST PUT 200 301 404 500 ms bytes id name email path`)

// content is n bytes of new text or random bytes.
func (v *synthVolume) content(text bool, n int64) []byte {
	b := make([]byte, 0, n)
	if !text {
		b = b[:n]
		var seed [32]byte
		for i := range 4 {
			u := v.rng.Uint64()
			for j := range 8 {
				seed[i*8+j] = byte(u >> (8 * j))
			}
		}
		_, _ = rand.NewChaCha8(seed).Read(b)
		return b
	}
	for int64(len(b)) < n {
		words := 4 + v.rng.IntN(12)
		for w := range words {
			if w > 0 {
				b = append(b, ' ')
			}
			b = append(b, benchWords[v.rng.IntN(len(benchWords))]...)
			if v.rng.IntN(8) == 0 {
				b = strconv.AppendInt(b, v.rng.Int64N(100000), 10)
			}
		}
		b = append(b, '\n')
	}
	return b[:n]
}
