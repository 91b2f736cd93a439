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

// resolveUser finds the chat user arg names. Its errors quote what was typed
// in a code span: `@channel` must not become a mention.
func (r *Router) resolveUser(ctx context.Context, arg string) (User, error) {
	name := strings.ToLower(strings.TrimPrefix(arg, "@"))
	if !userNamePattern.MatchString(name) {
		return User{}, Errorf(Invalid, "%s is not a user name.", code(arg))
	}
	if r.deps.Directory == nil {
		return User{}, Errorf(Unavailable, "No chat is configured, so I cannot look up %s.", code("@"+name))
	}
	u, err := r.deps.Directory.UserByName(ctx, name)
	if KindOf(err) == NotFound {
		return User{}, &Error{Kind: NotFound, Message: fmt.Sprintf("There is no user %s here.", code("@"+name)), Err: err}
	}
	if err != nil {
		return User{}, err
	}
	return u, nil
}

// systemAdminOnly is Verb.Permit for the verbs that change who is a toolbox
// admin: in the chat, only a Mattermost system admin may, not a member of the
// list itself (who could otherwise add anyone, or take the others off).
func (r *Router) systemAdminOnly(ctx context.Context, c Caller, _ []string) error {
	if c.Terminal {
		return nil
	}
	if r.deps.Directory == nil {
		return Errorf(Unavailable, "No chat is configured, so I cannot check that you are a Mattermost system admin.")
	}
	ok, err := r.deps.Directory.IsSystemAdmin(ctx, c.UserID)
	if err != nil {
		return &Error{Kind: Unavailable, Message: "I could not check your permissions with Mattermost. Try again in a moment.", Err: err}
	}
	if !ok {
		return Errorf(Forbidden, "Only Mattermost system admins may change the toolbox admins list; being on it is not enough.")
	}
	return nil
}

func (r *Router) adminsAddVerb() *Verb {
	return &Verb{
		Name: "admins add", Args: "<@user>", MinArgs: 1, MaxArgs: 1, Role: Admin, Confirmations: 1,
		Summary: "let someone run the admin verbs (Mattermost system admins only)",
		Help:    "Mattermost system admins are always toolbox admins; this list adds others. Only a system admin may change it, with a confirmation.",
		Permit:  r.systemAdminOnly,
		// The user is looked up before a prompt is posted: a name that is no
		// one is an error, not a question.
		Validate: func(ctx context.Context, args []string) error {
			u, err := r.resolveUser(ctx, args[0])
			if err != nil {
				return err
			}
			if ok, err := r.deps.Store.IsAdmin(u.ID); err != nil || ok {
				if err == nil {
					err = Errorf(Conflict, "%s is already a toolbox admin.", code("@"+u.Name))
				}
				return err
			}
			return nil
		},
		Describe: func(args []string) string {
			return fmt.Sprintf("%s will be able to run the admin verbs: add, remove, restore and upgrade apps.", code("@"+strings.TrimPrefix(args[0], "@")))
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			u, err := r.resolveUser(ctx, inv.Args[0])
			if err != nil {
				return "", err
			}
			err = r.deps.Store.AddAdmin(state.Admin{UserID: u.ID, UserName: u.Name, AddedBy: inv.Caller.UserName, Added: r.deps.Now()})
			if errors.Is(err, state.ErrConflict) {
				return "", Errorf(Conflict, "%s is already a toolbox admin.", code("@"+u.Name))
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
		Summary: "take someone off the toolbox admins list (Mattermost system admins only)",
		Permit:  r.systemAdminOnly,
		Validate: func(ctx context.Context, args []string) error {
			u, err := r.resolveUser(ctx, args[0])
			if err != nil {
				return err
			}
			if ok, err := r.deps.Store.IsAdmin(u.ID); err != nil || !ok {
				if err == nil {
					err = Errorf(NotFound, "%s is not on the toolbox admins list.", code("@"+u.Name))
				}
				return err
			}
			return nil
		},
		Describe: func(args []string) string {
			return fmt.Sprintf("%s will no longer be able to run the admin verbs (unless a Mattermost system admin).", code("@"+strings.TrimPrefix(args[0], "@")))
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			u, err := r.resolveUser(ctx, inv.Args[0])
			if err != nil {
				return "", err
			}
			err = r.deps.Store.RemoveAdmin(u.ID)
			if errors.Is(err, state.ErrNotFound) {
				return "", Errorf(NotFound, "%s is not on the toolbox admins list.", code("@"+u.Name))
			}
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s is no longer a toolbox admin.", code("@"+u.Name)), nil
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
				by := ""
				if a.AddedBy != "" {
					by = " by " + code("@"+a.AddedBy)
				}
				fmt.Fprintf(&b, "- %s, added%s on %s\n", code("@"+a.UserName), by, a.Added.UTC().Format("2006-01-02"))
			}
			return strings.TrimRight(b.String(), "\n"), nil
		},
	}
}
