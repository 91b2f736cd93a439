package commands

import (
	"strings"
	"testing"
)

// The reproductions: a usage error, and the value typed before the
// setting's name, reached the audit log with the value.
func TestSetRedactsEverythingAfterTheApp(t *testing.T) {
	e, _ := appsEnv(t, &fakeEngine{total: 8 << 30})
	tests := []struct {
		who, text, audit string
	}{
		{"ann", "set gitlab hunter2secret", "set gitlab [redacted]"},
		{"ann", "set gitlab hunter2secret SMTP_PASSWORD", "set gitlab [redacted]"},
		{"ann", "set wordpress hunter2secret ADMIN_EMAIL", "set wordpress [redacted]"},
		{"ann", "set wordpress ADMIN_EMAIL hunter2secret", "set wordpress [redacted]"},
		{"ann", "set wordpress ADMIN_EMAIL hunter2secret and more", "set wordpress [redacted]"},
		{"ann", "set wordpress 'ADMIN_EMAIL hunter2secret'", "set wordpress [redacted]"},
		{"bob", "set wordpress ADMIN_EMAIL hunter2secret", "set wordpress [redacted]"}, // refused: not an admin
		{"ann", "SET wordpress ADMIN_EMAIL hunter2secret", "set wordpress [redacted]"},
		{"ann", "set wordpress", "set wordpress"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			reply := e.handle(caller(tt.who), tt.text)
			if rec := e.lastAudit(t); rec.Text != tt.audit {
				t.Errorf("audit of %q = %q, want %q", tt.text, rec.Text, tt.audit)
			}
			if strings.Contains(strings.ToLower(reply.Text), "hunter2secret") && !strings.Contains(reply.Text, "is now `hunter2secret`") {
				t.Errorf("reply to %q = %q, shows the value", tt.text, reply.Text)
			}
		})
	}
	if log := strings.ToLower(e.log.String()); strings.Contains(log, "hunter2secret") {
		t.Errorf("the log holds the value:\n%s", log)
	}
}
