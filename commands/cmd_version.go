package commands

import (
	"context"
	"runtime"
)

func (r *Router) versionVerb() *Verb {
	return &Verb{
		Name: "version", MaxArgs: 0,
		Summary: "show which toolbox is running",
		Run: func(context.Context, Invocation) (string, error) {
			return "toolbox " + r.deps.Version + " (" + runtime.Version() + ")", nil
		},
	}
}
