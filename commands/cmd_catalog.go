package commands

import (
	"context"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
)

func (a *AppDeps) catalogVerb() *Verb {
	return &Verb{
		Name: "catalog", MaxArgs: 0,
		Summary: "list the apps I can add, with what each needs",
		Run: func(context.Context, Invocation) (string, error) {
			apps, err := a.Catalog.All()
			if err != nil {
				return "", err
			}
			return catalog.Summary(apps) + "\nAdd one with `/toolbox add <app> [domain]`.", nil
		},
	}
}
