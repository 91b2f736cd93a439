package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/backup"
	"github.com/toolbox-collective/toolbox/deploy/catalog"
)

func TestFindRun(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 3, 0, 0, 0, time.UTC) }
	snap := func(id, job, what string, at time.Time, complete bool) backup.Snapshot {
		tags := map[string]string{"app": "wp", "job": job, "what": what, "version": "7.1"}
		if complete {
			tags["complete"] = "1"
		}
		return backup.Snapshot{ID: id + "00000000", ShortID: id, Time: at, Tags: tags}
	}
	list := []backup.Snapshot{
		snap("aaaa0001", "10", "wp.sql", day(1), true),
		snap("aaaa0002", "10", "volumes", day(1), false),
		snap("aaaa0003", "10", "state", day(1), false),
		snap("bbbb0001", "11", "wp.sql", day(2), true),
		snap("bbbb0002", "11", "volumes", day(2), false),
		snap("cccc0001", "12", "wp.sql", day(3), false), // cut short: not whole
		snap("cccc0002", "12", "volumes", day(3), false),
		snap("dddd0002", "13", "volumes", day(4), false), // the dump failed
	}
	req := commands.RestoreRequest{Live: commands.Deployment{App: "wp"}, Snapshot: "latest",
		Dumps: []catalog.Dump{{File: "wp.sql"}}, Volumes: []string{"html"}}

	r, err := findRun(list, req)
	if err != nil || r.job != 11 || r.volumes.ShortID != "bbbb0002" || r.dumps["wp.sql"].ShortID != "bbbb0001" {
		t.Errorf("latest = %+v, %v; want job 11, the newest whole run", r, err)
	}
	req.Snapshot = "aaaa0002"
	if r, err := findRun(list, req); err != nil || r.job != 10 {
		t.Errorf("by a volume snapshot's ID = %+v, %v; want job 10", r, err)
	}
	req.Snapshot = "aaaa000100000000"
	if r, err := findRun(list, req); err != nil || r.job != 10 {
		t.Errorf("by a full ID = %+v, %v; want job 10", r, err)
	}
	var e *commands.Error
	req.Snapshot = "dddd0002"
	if _, err := findRun(list, req); !errors.As(err, &e) || e.Kind != commands.Invalid {
		t.Errorf("a run without its dump = %v, want it refused as not whole", err)
	}
	req.Snapshot = "eeee0001"
	if _, err := findRun(list, req); !errors.As(err, &e) || e.Kind != commands.NotFound {
		t.Errorf("an unknown snapshot = %v, want not found", err)
	}
	req.Snapshot = "latest"
	if _, err := findRun(list[5:], req); !errors.As(err, &e) || e.Kind != commands.NotFound {
		t.Errorf("no whole run = %v, want not found", err)
	}
}
