package host

import (
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDockerfileMatchesLayout checks that the Dockerfile's last stage and
// the image `up` builds from this binary have one layout: the same image
// configuration, the same passwd and group, the same folders and owners.
func TestDockerfileMatchesLayout(t *testing.T) {
	src, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	stage := text[strings.Index(text, "FROM scratch AS image"):]
	var got []string
	for _, line := range strings.Split(stage, "\n") {
		for _, kw := range []string{"USER ", "ENV ", "WORKDIR ", "EXPOSE ", "VOLUME ", "ENTRYPOINT ", "CMD "} {
			if strings.HasPrefix(line, kw) {
				got = append(got, strings.TrimSpace(line))
			}
		}
	}
	want := botImageConfig()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the Dockerfile's image configuration:\n  %s\nup's:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	for file, content := range map[string]string{"passwd": botPasswd, "group": botGroup} {
		m := regexp.MustCompile(`echo '([^']*)' > /out/etc/` + file).FindStringSubmatch(text)
		if m == nil || m[1]+"\n" != content {
			t.Errorf("the Dockerfile's /etc/%s = %q, up's = %q", file, m, content)
		}
	}
	entries := map[string]fs.FileMode{}
	for _, e := range botImageEntries("/proc/self/exe") {
		entries[strings.TrimSuffix(e.Name, "/")] = e.Mode
	}
	for _, need := range []struct {
		dockerfile, entry string
		mode              fs.FileMode
	}{
		{"mkdir -m 700 /out/data", "data", fs.ModeDir | 0o700},
		{"mkdir -m 1777 /out/tmp", "tmp", fs.ModeDir | fs.ModeSticky | 0o777},
		{"--chown=10001:10001 /out/data /data", "data", fs.ModeDir | 0o700},
		{"/out/toolbox /toolbox", "toolbox", 0o755},
		{"ca-certificates.crt /etc/ssl/certs/ca-certificates.crt", "", 0},
	} {
		if !strings.Contains(text, need.dockerfile) {
			t.Errorf("the Dockerfile lacks %q", need.dockerfile)
		}
		if need.entry != "" && entries[need.entry] != need.mode {
			t.Errorf("up's image has %s with mode %v, want %v as the Dockerfile makes it", need.entry, entries[need.entry], need.mode)
		}
	}
	for _, e := range botImageEntries("/proc/self/exe") {
		if e.Name == "data/" && (e.UID != BotUID || e.GID != BotUID) {
			t.Errorf("up's /data belongs to %d:%d, want %d:%d", e.UID, e.GID, BotUID, BotUID)
		}
	}
}
