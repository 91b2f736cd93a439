package commands

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/toolbox-collective/toolbox/state"
)

// userNamePattern is Mattermost's rule for user names.
var userNamePattern = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,63}$`)

func (r *Router) resolveUser(ctx context.Context, arg string) (User, error) {
	name := strings.ToLower(strings.TrimPrefix(arg, "@"))
	if !userNamePattern.MatchString(name) {
		return User{}, Errorf(Invalid, "`%s` is not a user name.", truncate(arg, 40))
	}
	if r.deps.Directory == nil {
		return User{}, Errorf(Unavailable, "No chat is configured, so I cannot look up @%s.", name)
	}
	u, err := r.deps.Directory.UserByName(ctx, name)
	if err != nil {
		return User{}, err
	}
	return u, nil
}

func (r *Router) adminsAddVerb() *Verb {
	return &Verb{
		Name: "admins add", Args: "<@user>", MinArgs: 1, MaxArgs: 1, Role: Admin,
		Summary: "let someone run the admin verbs",
		Help:    "Mattermost system admins are always toolbox admins; this list adds others.",
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			u, err := r.resolveUser(ctx, inv.Args[0])
			if err != nil {
				return "", err
			}
			err = r.deps.Store.AddAdmin(state.Admin{UserID: u.ID, UserName: u.Name, AddedBy: inv.Caller.UserName, Added: r.deps.Now()})
			if errors.Is(err, state.ErrConflict) {
				return "", Errorf(Conflict, "@%s is already a toolbox admin.", u.Name)
			}
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("@%s is now a toolbox admin.", u.Name), nil
		},
	}
}

func (r *Router) adminsRemoveVerb() *Verb {
	return &Verb{
		Name: "admins remove", Args: "<@user>", MinArgs: 1, MaxArgs: 1, Role: Admin, Confirmations: 1,
		Summary: "take someone off the toolbox admins list",
		Describe: func(args []string) string {
			return fmt.Sprintf("@%s will no longer be able to run the admin verbs (unless a Mattermost system admin).", strings.TrimPrefix(args[0], "@"))
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			u, err := r.resolveUser(ctx, inv.Args[0])
			if err != nil {
				return "", err
			}
			err = r.deps.Store.RemoveAdmin(u.ID)
			if errors.Is(err, state.ErrNotFound) {
				return "", Errorf(NotFound, "@%s is not on the toolbox admins list.", u.Name)
			}
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("@%s is no longer a toolbox admin.", u.Name), nil
		},
	}
}

func (r *Router) adminsListVerb() *Verb {
	return &Verb{
		Name: "admins list", MaxArgs: 0,
		Summary: "show who may run the admin verbs",
		Run: func(context.Context, Invocation) (string, error) {
			admins, err := r.deps.Store.Admins()
			if err != nil {
				return "", err
			}
			var b strings.Builder
			b.WriteString("Toolbox admins are the Mattermost system admins")
			if len(admins) == 0 {
				b.WriteString(". No one else is on the list.")
				return b.String(), nil
			}
			b.WriteString(", and:\n")
			for _, a := range admins {
				fmt.Fprintf(&b, "- @%s, added by @%s on %s\n", a.UserName, a.AddedBy, a.Added.UTC().Format("2006-01-02"))
			}
			return strings.TrimRight(b.String(), "\n"), nil
		},
	}
}
