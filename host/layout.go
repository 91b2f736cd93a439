package host

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// The bot image's layout, written once: `up` builds it from this binary and
// the Dockerfile's last stage must match it (TestDockerfileMatchesLayout).
const (
	BotUID     = 10001
	BotBinary  = "/toolbox"
	BotDataDir = "/data"
	BotState   = BotDataDir + "/toolbox.db"
	BotListen  = "0.0.0.0:8080"
	botPort    = 8080
	caBundle   = "/etc/ssl/certs/ca-certificates.crt"
)

// botPasswd and botGroup give the bot's uid a name (Go's os/user and some
// tools want one).
var (
	botPasswd = fmt.Sprintf("toolbox:x:%d:%d:toolbox:%s:/sbin/nologin\n", BotUID, BotUID, BotDataDir)
	botGroup  = fmt.Sprintf("toolbox:x:%d:\n", BotUID)
)

// botImageConfig is the image's configuration, as Dockerfile instructions.
func botImageConfig() []string {
	uid := strconv.Itoa(BotUID)
	return []string{
		"USER " + uid + ":" + uid,
		"ENV TOOLBOX_STATE=" + BotState,
		"ENV TOOLBOX_LISTEN=" + BotListen,
		"WORKDIR " + BotDataDir,
		"EXPOSE " + strconv.Itoa(botPort),
		`VOLUME ["` + BotDataDir + `"]`,
		`ENTRYPOINT ["` + BotBinary + `"]`,
		`CMD ["serve"]`,
	}
}

// botImageEntries is the image's file system: the binary, a passwd entry for
// its user, the CA bundle when this machine has one, and the state folder
// owned by that user.
func botImageEntries(binary string) []docker.Entry {
	entries := []docker.Entry{
		{Name: "etc/passwd", Mode: 0o644, Data: []byte(botPasswd)},
		{Name: "etc/group", Mode: 0o644, Data: []byte(botGroup)},
		{Name: BotBinary[1:], Mode: 0o755, SourcePath: binary},
		{Name: BotDataDir[1:] + "/", Mode: fs.ModeDir | 0o700, UID: BotUID, GID: BotUID},
		{Name: "tmp/", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
	if _, err := os.Stat(caBundle); err == nil {
		entries = append(entries, docker.Entry{Name: caBundle[1:], Mode: 0o644, SourcePath: caBundle})
	}
	return entries
}
