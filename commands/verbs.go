package commands

// builtins is the command table of the chat foundation; later capabilities
// pass their verbs to NewRouter.
func (r *Router) builtins() []*Verb {
	verbs := []*Verb{
		r.helpVerb(),
		r.statusVerb(),
		r.jobsVerb(),
		r.auditVerb(),
		r.adminsAddVerb(),
		r.adminsRemoveVerb(),
		r.adminsListVerb(),
		r.selftestVerb(),
		r.versionVerb(),
	}
	if a := r.deps.Apps; a != nil {
		verbs = append(verbs, a.catalogVerb(), a.addVerb(r), a.removeVerb(r), a.restartVerb(),
			a.upgradeVerb(r), a.logsVerb(), a.setVerb())
	}
	return verbs
}
