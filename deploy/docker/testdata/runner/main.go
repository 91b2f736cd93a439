// Command runner is a test program for Engine.Run, built into a FROM scratch
// image by the tests:
//
//	runner cat           copy stdin to stdout, then write "eof" to stderr
//	runner exit N        write "out" to stdout, "err" to stderr, exit N
//	runner env NAME      write $NAME and /proc/1/cmdline (NUL bytes as spaces)
//	runner write PATH    create PATH; exit 1 with the error on stderr if that fails
//	runner sleep         write "ready" to stdout, then sleep until SIGTERM (exit 143)
//	runner drain PATH    write "ready" to stdout, read stdin to its end, then create PATH (the process saw EOF)
//	runner exists PATH   exit 0 if PATH exists, 3 if it does not, 1 on another error
//	runner loud N [line] write N bytes to stdout and N to stderr, in 100-byte lines
//	                     (one line each with "line"), then "last words" on both; exit 1
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "runner: no command")
		return 2
	}
	switch args[0] {
	case "cat":
		if _, err := io.Copy(stdout, stdin); err != nil {
			fmt.Fprintln(stderr, "runner:", err)
			return 1
		}
		fmt.Fprint(stderr, "eof")
		return 0
	case "exit":
		n, _ := strconv.Atoi(args[1])
		fmt.Fprint(stdout, "out")
		fmt.Fprint(stderr, "err")
		return n
	case "env":
		cmdline, err := os.ReadFile("/proc/1/cmdline")
		if err != nil {
			fmt.Fprintln(stderr, "runner:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n%s\n", os.Getenv(args[1]), strings.ReplaceAll(string(cmdline), "\x00", " "))
		return 0
	case "write":
		if err := os.WriteFile(args[1], []byte("x"), 0o644); err != nil {
			fmt.Fprintln(stderr, "runner:", err)
			return 1
		}
		return 0
	case "drain":
		fmt.Fprint(stdout, "ready")
		if _, err := io.Copy(io.Discard, stdin); err != nil {
			fmt.Fprintln(stderr, "runner:", err)
			return 1
		}
		if err := os.WriteFile(args[1], []byte("eof"), 0o644); err != nil {
			fmt.Fprintln(stderr, "runner:", err)
			return 1
		}
		return 0
	case "exists":
		switch _, err := os.Stat(args[1]); {
		case err == nil:
			return 0
		case errors.Is(err, fs.ErrNotExist):
			return 3
		default:
			fmt.Fprintln(stderr, "runner:", err)
			return 1
		}
	case "loud":
		n, err := strconv.Atoi(args[1])
		if err != nil {
			fmt.Fprintln(stderr, "runner:", err)
			return 2
		}
		oneLine := len(args) > 2 && args[2] == "line"
		for _, w := range []io.Writer{stdout, stderr} {
			if err := loud(w, n, oneLine); err != nil {
				return 1 // the reader hung up: what the bounds want
			}
		}
		fmt.Fprintln(stdout, "last words")
		fmt.Fprintln(stderr, "last words")
		return 1
	case "sleep":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		fmt.Fprint(stdout, "ready")
		<-ctx.Done()
		return 143
	}
	fmt.Fprintln(stderr, "runner: unknown command", args[0])
	return 2
}

// loud writes n bytes to w: lines of 100 bytes, or a single line, ending
// with a newline.
func loud(w io.Writer, n int, oneLine bool) error {
	line := []byte(strings.Repeat("x", 99) + "\n")
	if oneLine {
		line[99] = 'x'
	}
	for n > 0 {
		k := min(n, len(line))
		chunk := line[:k]
		if n == k { // the last chunk ends the line
			chunk = append(append([]byte(nil), line[:k-1]...), '\n')
		}
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
