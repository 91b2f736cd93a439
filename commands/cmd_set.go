package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

func (a *AppDeps) setVerb() *Verb {
	return &Verb{
		Name: "set", Args: "<app> <SETTING> <value>", MinArgs: 3, MaxArgs: 3, Role: Admin,
		Summary: "give an app a setting it needs, such as its SMTP server",
		Help: "`/toolbox catalog` lists the settings each app needs. Secret settings (passwords) are kept like generated secrets and " +
			"never shown again; the audit log records that one was set, not its value. Run `/toolbox add <app>` again to apply a change.",
		// Everything after the app is hidden, whatever the count: a mistake
		// (the value first, a missing name, one word too many) may still carry
		// the secret.
		Redact: func(args []string) []string {
			if len(args) <= 1 {
				return args
			}
			return []string{args[0], "[redacted]"}
		},
		Run: func(_ context.Context, inv Invocation) (string, error) {
			app, err := a.catalogApp(inv.Args[0])
			if err != nil {
				return "", err
			}
			name, value := strings.ToUpper(inv.Args[1]), inv.Args[2]
			i := slices.IndexFunc(app.Settings, func(s catalog.Setting) bool { return s.Name == name })
			if i < 0 {
				names := make([]string, len(app.Settings))
				for j, s := range app.Settings {
					names[j] = s.Name
				}
				if len(names) == 0 {
					return "", Errorf(NotFound, "%s has no settings.", app.Name)
				}
				// The name is not echoed: it may be the value, typed first.
				return "", Errorf(NotFound, "%s has no such setting. Its settings: %s.", app.Name, strings.Join(names, ", "))
			}
			if value == "" || strings.ContainsAny(value, "\n\r\x00") {
				return "", Errorf(Invalid, "The value must be one line and not empty.")
			}
			if app.Settings[i].Secret {
				if err := a.Store.SetSecret(secretName(app.Name, name), state.Secret(value)); err != nil {
					return "", err
				}
				return fmt.Sprintf("Kept the secret %s of %s. Run `/toolbox add %s` to apply it.", name, app.Name, app.Name), nil
			}
			if err := a.Store.SetSetting(settingName(app.Name, name), value); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s of %s is now %s. Run `/toolbox add %s` to apply it.", name, app.Name, code(value), app.Name), nil
		},
	}
}
