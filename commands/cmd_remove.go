package commands

import (
	"context"
	"fmt"
	"slices"
)

const (
	purgeFlag = "--purge"
	// chatFlag is the terminal's own confirmation that it means to remove
	// the chat app, which the chat itself may never do.
	chatFlag = "--chat"
)

func (a *AppDeps) removeVerb(r *Router) *Verb {
	purging := func(args []string) bool { return slices.Contains(args, purgeFlag) }
	return &Verb{
		Name: "remove", Args: "<app> [--purge]", MinArgs: 1, MaxArgs: 3, Role: Admin, Job: true, Apps: firstApp,
		Summary: "stop and remove an app; its data is kept unless --purge",
		Help: "Without --purge, the app's volumes and secrets stay, so `/toolbox add <app>` brings it back with its data. " +
			"With --purge, its data is deleted for good: that asks for two confirmations. " +
			"The chat the toolbox lives in is never removed from the chat: only on the machine's terminal, with `--chat` as its own confirmation.",
		Permit: a.mayRemove,
		ConfirmationsFor: func(args []string) int {
			if purging(args) {
				return 2
			}
			return 1
		},
		Describe: func(args []string) string {
			if purging(args) {
				return fmt.Sprintf("%s will be removed **and all its data deleted for good**.", args[0])
			}
			return fmt.Sprintf("%s will be stopped and removed; its data is kept.", args[0])
		},
		Validate: func(_ context.Context, args []string) error {
			flags := args[1:]
			for i, f := range flags {
				if (f != purgeFlag && f != chatFlag) || slices.Contains(flags[:i], f) {
					return Errorf(Invalid, "Usage: `/toolbox remove <app> [--purge]`")
				}
			}
			if slices.Contains(flags, chatFlag) && args[0] != a.chatApp() {
				return Errorf(Invalid, "`--chat` confirms the removal of the chat app (%s) only.", a.chatApp())
			}
			_, err := a.installed(args[0])
			return err
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			name := inv.Args[0]
			purge := purging(inv.Args)
			rec, err := a.installed(name)
			if err != nil {
				return "", err
			}
			secrets := a.secretsOf(rec)
			again := fmt.Sprintf("Nothing else was changed; run `/toolbox remove %s` again to retry.", quoteArgs(inv.Args))
			if a.Proxy != nil {
				inv.Progress("removing the route of %s", name)
				if err := a.Proxy.RemoveRoute(ctx, name); err != nil {
					return "", engineFailed(fmt.Sprintf("Removing the route of %s", name), again, secrets, err)
				}
			}
			inv.Progress("removing the containers of %s", name)
			if err := a.Engine.Remove(ctx, name, purge); err != nil {
				next := fmt.Sprintf("Its route is already removed, but it is still recorded as installed: run `/toolbox remove %s` again to finish, or `/toolbox add %s` to bring it back.", quoteArgs(inv.Args), name)
				if a.Proxy == nil {
					next = again
				}
				return "", engineFailed(fmt.Sprintf("Removing the containers of %s", name), next, secrets, err)
			}
			// The secrets go before the record, so a crash in between leaves
			// a record that `remove --purge` can be run on again.
			if purge {
				if _, err := a.Store.DeleteSecrets(secretName(name, "")); err != nil {
					return "", err
				}
			}
			// The generation of the data kept goes with it, for `add` to find;
			// after a purge, there is none.
			kept := rec.Generation
			if purge {
				kept = ""
			}
			if err := a.Store.SetSetting(keptGenerationKey(name), kept); err != nil {
				return "", err
			}
			if err := a.Store.DeleteApp(name); err != nil {
				return "", err
			}
			if !purge {
				return fmt.Sprintf("**%s** is removed. Its data is kept: `/toolbox add %s` brings it back.", name, name), nil
			}
			return fmt.Sprintf("**%s** is removed and its data deleted.", name), nil
		},
	}
}

// chatApp is the app the bot lives in (AppDeps.ChatApp), mattermost unless set.
func (a *AppDeps) chatApp() string {
	if a.ChatApp != "" {
		return a.ChatApp
	}
	return "mattermost"
}

// mayRemove refuses to remove the chat app from the chat: it would cut the
// branch the toolbox sits on, and whoever asks could not undo it from there.
// The terminal may, with --chat as its own confirmation.
func (a *AppDeps) mayRemove(_ context.Context, c Caller, args []string) error {
	chat := a.chatApp()
	if args[0] != chat {
		return nil
	}
	if !c.Terminal {
		return Errorf(Forbidden, "%s is the chat the toolbox lives in: it cannot be removed from the chat. "+
			"On the machine's terminal, `toolbox do --yes remove %s --chat` can, if that is really meant.", chat, chat)
	}
	if !slices.Contains(args[1:], chatFlag) {
		purge := ""
		if slices.Contains(args, purgeFlag) {
			purge = " " + purgeFlag
		}
		return Errorf(Invalid, "%s is the chat the toolbox lives in: removing it stops the chat for everyone, and the bot with it. "+
			"If that is really meant, confirm it with `--chat`: `toolbox do --yes remove %s%s --chat`.", chat, chat, purge)
	}
	return nil
}
