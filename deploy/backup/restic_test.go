package backup

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/poly1305" //nolint:staticcheck // restic's key files use Poly1305-AES
	"golang.org/x/crypto/scrypt"
)

// resticVersion is the restic the tests run.
const resticVersion = "v0.18.1"

// howToGetRestic is what a test says when restic is missing.
const howToGetRestic = "restic " + resticVersion + " is needed: the tests build it with " +
	"`CGO_ENABLED=0 go install github.com/restic/restic/cmd/restic@" + resticVersion + "` into " +
	"$TOOLBOX_CACHE/restic-" + resticVersion + "/restic (default /var/cache/toolbox for root), " +
	"which needs the Go module proxy; or set TOOLBOX_RESTIC_BIN to a restic " + resticVersion + " binary"

// resticBin finds or builds restic once per test binary; a file lock makes
// parallel test binaries build it once.
var resticBin = sync.OnceValues(func() (string, error) {
	if bin := os.Getenv("TOOLBOX_RESTIC_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("TOOLBOX_RESTIC_BIN: %w", err)
		}
		return bin, nil
	}
	cache, err := cacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "restic-"+resticVersion)
	bin := filepath.Join(dir, "restic")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another test binary built it while we waited
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(cache, ".restic-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "install", "github.com/restic/restic/cmd/restic@"+resticVersion)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+tmp, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install: %v: %s", err, lastLines(string(out), 5))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(tmp, "restic"), bin); err != nil {
		return "", err
	}
	return bin, nil
})

// cacheDir is $TOOLBOX_CACHE, else /var/cache/toolbox for root, else the
// user's cache folder (as toolbox images build has it).
func cacheDir() (string, error) {
	if d := os.Getenv("TOOLBOX_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	if os.Geteuid() == 0 {
		return "/var/cache/toolbox", nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "toolbox"), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// needRestic returns restic's path, or skips (fails under CI=true) saying
// how to get it.
func needRestic(t testing.TB) string {
	t.Helper()
	bin, err := resticBin()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s (%v)", howToGetRestic, err)
		}
		t.Skipf("%s (%v)", howToGetRestic, err)
	}
	return bin
}

// localRunner runs restic as a local process. Each volume is a folder
// under dir; a Mount's Target is rewritten to its volume's folder in the
// arguments and in RESTIC_REPOSITORY, so snapshots hold the folders' paths.
type localRunner struct {
	bin string
	dir string

	mu      sync.Mutex
	runs    []Run             // as the Repository made them, before rewriting
	targets map[string]string // mount target → volume folder
}

var _ Runner = (*localRunner)(nil)

func newLocalRunner(t *testing.T) *localRunner {
	return &localRunner{bin: needRestic(t), dir: t.TempDir()}
}

// volume is the folder of a volume, made on first use.
func (l *localRunner) volume(name string) string {
	p := filepath.Join(l.dir, "volumes", name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		panic(err)
	}
	return p
}

func (l *localRunner) Run(ctx context.Context, r Run) (int, error) {
	l.mu.Lock()
	l.runs = append(l.runs, Run{Args: slices.Clone(r.Args), Env: r.Env, Mounts: slices.Clone(r.Mounts)})
	// Targets of earlier runs are rewritten too: a snapshot keeps its
	// backup's paths, which a restore names ("ID:/volumes/wp_data").
	for _, m := range r.Mounts {
		if m.Volume == "" || !strings.HasPrefix(m.Target, "/") {
			l.mu.Unlock()
			return 0, fmt.Errorf("bad mount %+v", m)
		}
		if l.targets == nil {
			l.targets = map[string]string{}
		}
		l.targets[m.Target] = l.volume(m.Volume)
	}
	type target struct{ from, to string }
	var targets []target
	for from, to := range l.targets {
		targets = append(targets, target{from, to})
	}
	l.mu.Unlock()
	sort.Slice(targets, func(i, j int) bool { return len(targets[i].from) > len(targets[j].from) })
	rewrite := func(s string) string {
		for _, t := range targets {
			if s == t.from || strings.HasPrefix(s, t.from+"/") {
				return t.to + s[len(t.from):]
			}
			if i := strings.Index(s, ":"+t.from); i >= 0 && (len(s) == i+1+len(t.from) || s[i+1+len(t.from)] == '/') {
				return s[:i+1] + t.to + s[i+1+len(t.from):]
			}
		}
		return s
	}
	args := make([]string, len(r.Args))
	for i, a := range r.Args {
		args[i] = rewrite(a)
	}
	cmd := exec.CommandContext(ctx, l.bin, args...)
	cmd.Env = []string{"HOME=" + l.dir, "TZ=UTC", "TMPDIR=" + os.TempDir()}
	for k, v := range r.Env {
		if k == "RESTIC_REPOSITORY" {
			v = rewrite(v)
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = orDiscard(r.Stdout), orDiscard(r.Stderr)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var in io.WriteCloser
	if r.Stdin != nil {
		var err error
		if in, err = cmd.StdinPipe(); err != nil {
			return 0, err
		}
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	var feed sync.WaitGroup
	if in != nil {
		feed.Go(func() {
			_, err := io.Copy(in, r.Stdin)
			if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
				_ = cmd.Process.Kill() // a truncated stream must not look complete
				return
			}
			_ = in.Close()
		})
	}
	err := cmd.Wait()
	feed.Wait()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// Runs returns the runs so far.
func (l *localRunner) Runs() []Run {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs)
}

// repoVolume is the volume of the tests' local repositories.
const repoVolume = "toolbox-backups"

// newRepo is a repository in a volume of a fresh local runner, not yet
// initialised.
func newRepo(t *testing.T) (*Repository, *localRunner) {
	l := newLocalRunner(t)
	return &Repository{
		URL:      "/repository",
		Password: "correct horse battery staple",
		Mounts:   []Mount{{Volume: repoVolume, Target: "/repository"}},
		Runner:   l,
	}, l
}

// initRepo is newRepo, initialised, with a cheap key (see lowerKDF).
func initRepo(t *testing.T) (*Repository, *localRunner) {
	t.Helper()
	repo, l := newRepo(t)
	if _, err := repo.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	lowerKDF(t, l.volume(repoVolume), repo.Password.Reveal())
	return repo, l
}

// lowerKDF re-encrypts the repository's keys with cheap scrypt parameters
// (N=1024), as restic's own tests do with
// repository.TestUseLowSecurityKDFParameters: restic calibrates scrypt to
// 0.5 s per run, and the year of daily backups is 365 runs. The format is
// restic's design document's: a key's data is IV || AES-256-CTR(master key)
// || Poly1305-AES MAC, under 64 bytes of scrypt(password, salt, N, r, p).
func lowerKDF(t *testing.T, repoDir, password string) {
	t.Helper()
	keys, err := filepath.Glob(filepath.Join(repoDir, "keys", "*"))
	if err != nil || len(keys) == 0 {
		t.Fatalf("no keys in %s: %v", repoDir, err)
	}
	for _, path := range keys {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var k map[string]json.RawMessage
		var p struct {
			N, R, P    int
			Salt, Data []byte
		}
		if err := json.Unmarshal(raw, &k); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		master, err := keyOpen(password, p.Salt, p.N, p.R, p.P, p.Data)
		if err != nil {
			t.Fatalf("key %s: %v", filepath.Base(path), err)
		}
		salt := make([]byte, 64)
		_, _ = rand.Read(salt)
		data, err := keySeal(password, salt, 1024, 8, 1, master)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]any{"N": 1024, "r": 8, "p": 1, "salt": salt, "data": data} {
			if k[name], err = json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		}
		out, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(out) // a key's file name is the hash of its contents
		if err := os.WriteFile(filepath.Join(filepath.Dir(path), hex.EncodeToString(sum[:])), out, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

func userKey(password string, salt []byte, n, r, p int) (enc []byte, mac *[32]byte, err error) {
	k, err := scrypt.Key([]byte(password), salt, n, r, p, 64)
	if err != nil {
		return nil, nil, err
	}
	return k[:32], (*[32]byte)(k[32:64]), nil
}

// polyKey is restic's Poly1305-AES key for nonce: r || AES_k(nonce), with
// the MAC key stored as k || r.
func polyKey(mac *[32]byte, nonce []byte) *[32]byte {
	var key [32]byte
	c, err := aes.NewCipher(mac[:16])
	if err != nil {
		panic(err)
	}
	c.Encrypt(key[16:], nonce)
	copy(key[:16], mac[16:])
	return &key
}

func keyOpen(password string, salt []byte, n, r, p int, data []byte) ([]byte, error) {
	enc, mac, err := userKey(password, salt, n, r, p)
	if err != nil {
		return nil, err
	}
	if len(data) < 32 {
		return nil, errors.New("key data too short")
	}
	nonce, ct, tag := data[:16], data[16:len(data)-16], data[len(data)-16:]
	if !poly1305.Verify((*[16]byte)(tag), ct, polyKey(mac, nonce)) {
		return nil, errors.New("key MAC does not verify (wrong password?)")
	}
	c, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(ct))
	cipher.NewCTR(c, nonce).XORKeyStream(out, ct)
	return out, nil
}

func keySeal(password string, salt []byte, n, r, p int, plain []byte) ([]byte, error) {
	enc, mac, err := userKey(password, salt, n, r, p)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	c, err := aes.NewCipher(enc)
	if err != nil {
		return nil, err
	}
	ct := make([]byte, len(plain))
	cipher.NewCTR(c, nonce).XORKeyStream(ct, plain)
	var tag [16]byte
	poly1305.Sum(&tag, ct, polyKey(mac, nonce))
	return append(append(nonce, ct...), tag[:]...), nil
}
