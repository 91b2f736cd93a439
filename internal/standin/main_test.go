package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestApp(t *testing.T) {
	dir := t.TempDir()
	cfg := load(env(map[string]string{"DATA_DIR": dir, "APP_NAME": "wiki <test>", "HEALTH_PATH": "/up"}))
	srv := httptest.NewServer(newApp(cfg))
	t.Cleanup(srv.Close)

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/up"); code != 200 || body != "ok" {
		t.Errorf("GET /up = %d %q, want 200 \"ok\"", code, body)
	}
	if code, _ := get("/healthz"); code != 404 {
		t.Errorf("GET /healthz with HEALTH_PATH=/up = %d, want 404", code)
	}
	for _, rec := range []string{"first", "second\n"} {
		resp, err := http.Post(srv.URL+"/records", "text/plain", strings.NewReader(rec))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("POST /records = %d, want 201", resp.StatusCode)
		}
	}
	if _, body := get("/records"); body != "first\nsecond\n" {
		t.Errorf("GET /records = %q, want %q", body, "first\nsecond\n")
	}
	if _, body := get("/"); !strings.Contains(body, "wiki &lt;test&gt;") || !strings.Contains(body, "2 records") {
		t.Errorf("GET / = %q, want the escaped app name and \"2 records\"", body)
	}
}

func TestDumpRestore(t *testing.T) {
	dir := t.TempDir()
	getenv := env(map[string]string{"DATA_DIR": dir})
	ctx := context.Background()

	var out bytes.Buffer
	if err := run(ctx, []string{"dump"}, getenv, nil, &out, io.Discard); err != nil || out.Len() != 0 {
		t.Fatalf("dump of nothing = %q, %v; want empty, nil", out.String(), err)
	}
	if err := run(ctx, []string{"restore"}, getenv, strings.NewReader("a\nb\n"), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(ctx, []string{"dump"}, getenv, nil, &out, io.Discard); err != nil || out.String() != "a\nb\n" {
		t.Errorf("dump after restore = %q, %v; want %q", out.String(), err, "a\nb\n")
	}
	out.Reset()
	if err := run(ctx, []string{"count"}, getenv, nil, &out, io.Discard); err != nil || out.String() != "2\n" {
		t.Errorf("count = %q, %v; want 2", out.String(), err)
	}
}

func TestHealth(t *testing.T) {
	srv := httptest.NewServer(newApp(load(env(nil))))
	t.Cleanup(srv.Close)
	tests := []struct {
		url  string
		want error
	}{
		{srv.URL + "/healthz", nil},
		{srv.URL + "/nope", exitCode(1)},
		{"http://127.0.0.1:1/healthz", exitCode(1)},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(context.Background(), []string{"health", tt.url}, env(nil), nil, &out, io.Discard)
		if !errors.Is(err, tt.want) {
			t.Errorf("health %s = %v (%q), want %v", tt.url, err, out.String(), tt.want)
		}
	}
}

func TestRequireEnv(t *testing.T) {
	err := run(context.Background(), nil, env(map[string]string{"STANDIN_REQUIRE_ENV": "DB_PASSWORD, SECRET", "SECRET": "x"}), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "DB_PASSWORD") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("serve without DB_PASSWORD = %v, want a refusal naming DB_PASSWORD only", err)
	}
}
