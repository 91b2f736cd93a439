package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.StatePath != "toolbox.db" || c.Listen != "127.0.0.1:8080" || c.BaseDomain != "localhost" || !c.Local ||
		c.PublicIP != "127.0.0.1" || c.HTTPSPort != 443 || c.ShutdownGrace != 30*time.Second || c.ConfirmTTL != 10*time.Minute {
		t.Errorf("defaults = %+v", c)
	}
	c, err = loadConfig(envOf(map[string]string{"TOOLBOX_BASE_DOMAIN": "Example.ORG"}))
	if err != nil || c.BaseDomain != "example.org" || c.Local || c.PublicIP != "0.0.0.0" {
		t.Errorf("with a real domain: %+v, %v; want ACME on 0.0.0.0", c, err)
	}
}

func TestLoadConfigListsEveryProblem(t *testing.T) {
	_, err := loadConfig(envOf(map[string]string{
		"TOOLBOX_LISTEN":          "nope",
		"TOOLBOX_MATTERMOST_URL":  "ftp://chat",
		"TOOLBOX_PROXY_ADMIN":     "caddy:2019",
		"TOOLBOX_SHUTDOWN_GRACE":  "soon",
		"TOOLBOX_CONFIRM_TTL":     "-1m",
		"TOOLBOX_LOG_LEVEL":       "loud",
		"TOOLBOX_LOCAL":           "maybe",
		"TOOLBOX_PUBLIC_IP":       "everywhere",
		"TOOLBOX_HTTPS_PORT":      "70000",
		"TOOLBOX_BACKUP_SCHEDULE": "nightly",
		"TOOLBOX_TIME_ZONE":       "Mars/Olympus",
		"TOOLBOX_BACKUP_KEEP":     "forever",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"TOOLBOX_LISTEN", "TOOLBOX_MATTERMOST_URL", "TOOLBOX_PROXY_ADMIN", "TOOLBOX_SHUTDOWN_GRACE",
		"TOOLBOX_CONFIRM_TTL", "TOOLBOX_LOG_LEVEL", "TOOLBOX_LOCAL", "TOOLBOX_PUBLIC_IP", "TOOLBOX_HTTPS_PORT",
		"TOOLBOX_BACKUP_SCHEDULE", "TOOLBOX_TIME_ZONE", "TOOLBOX_BACKUP_KEEP"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}

func TestConfigNeverPrintsThePassword(t *testing.T) {
	c, err := loadConfig(envOf(map[string]string{"TOOLBOX_MM_ADMIN_PASSWORD": "hunter2-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{strings.Join([]string{c.AdminPassword.String()}, ""), sprint(c)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("the configuration printed the admin password: %s", s)
		}
	}
}

func sprint(c config) string { return strings.TrimSpace(fmt.Sprintf("%+v", c)) }
