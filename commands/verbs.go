package commands

// builtins is the command table of the chat foundation; later capabilities
// pass their verbs to NewRouter.
func (r *Router) builtins() []*Verb {
	return []*Verb{
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
}
