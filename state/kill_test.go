package state

import (
	"bufio"
	"fmt"
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

// The child of TestAuditKill9 runs when this variable names a database.
const killChildEnv = "TOOLBOX_STATE_KILL_CHILD"

// killFloodEnv set makes the child also flood AppendAudit from a second
// goroutine, so the queue is always full.
const killFloodEnv = "TOOLBOX_STATE_KILL_FLOOD"

func TestMain(m *testing.M) {
	if path := os.Getenv(killChildEnv); path != "" {
		killChild(path)
		return
	}
	if path := os.Getenv(rotateChildEnv); path != "" {
		rotateChild(path)
		return
	}
	if path := os.Getenv(compactChildEnv); path != "" {
		compactChild(path)
		return
	}
	os.Exit(m.Run())
}

// killChild writes to the audit log and starts jobs until it is killed,
// printing one line per call that returned:
//
//	A <seq>           AppendAudit accepted record "A <seq>"
//	D <seq> <id>      AppendAuditDurable wrote "D <seq>" as record id
//	J <seq> <job> <id> StartJob created job (Args [seq]) and record id
//	B <seq>           the second goroutine's AppendAudit accepted "B <seq>"
func killChild(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	out := make(chan string, 1024)
	go func() { // one writer to stdout: lines stay whole
		for line := range out {
			os.Stdout.WriteString(line + "\n")
		}
	}()
	go func() {
		if os.Getenv(killFloodEnv) == "" {
			return
		}
		for seq := 0; ; seq++ {
			if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("B ", seq)}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			out <- fmt.Sprint("B ", seq)
		}
	}()
	fmt.Println("ready")
	var durable []uint64
	for seq := 0; ; seq++ {
		var line string
		switch r := rand.IntN(10); {
		case r < 7:
			err = s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("A ", seq)})
			line = fmt.Sprint("A ", seq)
		case r < 8:
			var id uint64
			id, err = s.AppendAuditDurable(AuditRecord{Kind: AuditClick, Text: fmt.Sprint("D ", seq)})
			durable = append(durable, id)
			line = fmt.Sprint("D ", seq, " ", id)
		case r < 9:
			var j Job
			var id uint64
			j, id, err = s.StartJob(Job{Verb: "backup", Args: []string{strconv.Itoa(seq)}}, AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("J ", seq)})
			line = fmt.Sprint("J ", seq, " ", j.ID, " ", id)
		default:
			if len(durable) > 0 {
				err = s.SetAuditOutcome(durable[rand.IntN(len(durable))], "done")
			}
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// Sent from this goroutine, in order, before the next call: the
		// parent sees every acknowledgement made before the kill, in order.
		out <- line
	}
}

// TestAuditKill9 kills a writing process with SIGKILL at random points and
// checks what the doc comment of auditWriter promises:
//   - every record AppendAuditDurable returned, and every job StartJob
//     returned with its audit record, is on disk;
//   - a job is on disk only with its audit record (one transaction);
//   - every AppendAudit record acknowledged before a durable call
//     returned is on disk: what is lost is only what was queued after the
//     last durable commit, and it is a suffix (no holes).
func TestAuditKill9(t *testing.T) {
	runs := 30
	if testing.Short() {
		runs = 5
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type figures struct {
		kills, acked, maxLost int
		maxAge                time.Duration
	}
	var byMode [2]figures // without, with the flood
	for run := range runs {
		flood := run % 2
		path := filepath.Join(dir, fmt.Sprint("killed", run, ".db"))
		acks := runAndKill(t, exe, path, flood == 1, time.Duration(20+rand.IntN(300))*time.Millisecond)
		lost, age := checkAfterKill(t, path, acks)
		f := &byMode[flood]
		f.kills++
		f.acked += len(acks)
		f.maxLost, f.maxAge = max(f.maxLost, lost), max(f.maxAge, age)
		if t.Failed() {
			t.Fatalf("run %d failed", run)
		}
	}
	for flood, f := range byMode {
		t.Logf("flood=%v: %d kills, %d acknowledged calls; at most %d acknowledged group-committed records lost in one kill, the oldest read %v before the kill",
			flood == 1, f.kills, f.acked, f.maxLost, f.maxAge)
	}
}

type ack struct {
	kind        string
	seq         int
	job, record uint64
	age         time.Duration // how long before the kill the parent read it
}

func runAndKill(t *testing.T, exe, path string, flood bool, after time.Duration) []ack {
	t.Helper()
	env := []string{killChildEnv + "=" + path}
	if flood {
		env = append(env, killFloodEnv+"=1")
	}
	var acks []ack
	var read []time.Time
	killedAt := killChildAfter(t, exe, env, after, func(line string) {
		read = append(read, time.Now())
		f := strings.Fields(line)
		a := ack{kind: f[0]}
		a.seq, _ = strconv.Atoi(f[1])
		switch a.kind {
		case "D":
			a.record, _ = strconv.ParseUint(f[2], 10, 64)
		case "J":
			a.job, _ = strconv.ParseUint(f[2], 10, 64)
			a.record, _ = strconv.ParseUint(f[3], 10, 64)
		}
		acks = append(acks, a)
	})
	for i := range acks {
		acks[i].age = killedAt.Sub(read[i])
	}
	return acks
}

// killChildAfter runs this test binary as a child with env added (TestMain
// picks the child's part from it), waits for its "ready" line, kills it
// with SIGKILL after the given time, and hands every later line to line. It
// returns when the child is gone, with the time of the kill, and fails the
// test unless the kill is what ended it.
func killChildAfter(t *testing.T, exe string, env []string, after time.Duration, line func(string)) time.Time {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child did not start: %q %s", lines.Text(), stderr.String())
	}
	killed := make(chan time.Time, 1)
	timer := time.AfterFunc(after, func() {
		killed <- time.Now()
		_ = cmd.Process.Signal(syscall.SIGKILL)
	})
	defer timer.Stop()
	for lines.Scan() {
		line(lines.Text())
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not SIGKILL: %s", err, stderr.String())
	}
	return <-killed
}

// checkAfterKill opens the killed file and checks it against acks; it
// returns how many acknowledged group-committed records were lost, and the
// age of the oldest.
func checkAfterKill(t *testing.T, path string, acks []ack) (int, time.Duration) {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after kill: %v", err)
	}
	defer closeChecked(t, s)
	recs := rawAudit(t, s)
	byText := map[string]AuditRecord{}
	for _, r := range recs {
		byText[r.Text] = r
	}
	// Every job on disk has its record.
	jobs, err := s.RecentJobs(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		r, ok := byText["J "+j.Args[0]]
		if !ok || r.Outcome != fmt.Sprintf("started job #%d", j.ID) {
			t.Errorf("job %d (seq %s) on disk without its audit record (%+v)", j.ID, j.Args[0], r)
		}
	}
	lastDurable := -1
	for _, a := range acks {
		if a.kind == "D" || a.kind == "J" {
			lastDurable = a.seq
		}
	}
	lost := 0
	var oldest time.Duration
	firstLost := map[string]int{}
	for _, a := range acks {
		text := fmt.Sprint(a.kind, " ", a.seq)
		r, ok := byText[text]
		switch a.kind {
		case "D":
			if !ok || r.ID != a.record {
				t.Errorf("durable record %q (id %d) lost after kill -9: found %+v", text, a.record, r)
			}
		case "J":
			if !ok || r.ID != a.record {
				t.Errorf("record %q of job %d lost after kill -9", text, a.job)
			}
			if j, err := s.Job(a.job); err != nil || j.Args[0] != strconv.Itoa(a.seq) {
				t.Errorf("job %d of %q: %+v, %v", a.job, text, j, err)
			}
		case "A", "B":
			if a.kind == "A" && !ok && a.seq < lastDurable {
				t.Errorf("record %q acknowledged before durable call %d returned, lost", text, lastDurable)
			}
			if !ok {
				lost++
				oldest = max(oldest, a.age)
				if _, seen := firstLost[a.kind]; !seen {
					firstLost[a.kind] = a.seq
				}
			} else if first, seen := firstLost[a.kind]; seen {
				t.Errorf("record %q is on disk but %s %d before it is not: a hole", text, a.kind, first)
			}
		}
	}
	if lost > auditQueueSize+auditBatchMax {
		t.Errorf("%d acknowledged records lost, more than the queue and a batch (%d)", lost, auditQueueSize+auditBatchMax)
	}
	return lost, oldest
}
