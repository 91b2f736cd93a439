// Package control is the toolbox's local control socket: the way `toolbox do`,
// `toolbox state backup` and `toolbox mattermost bootstrap` reach a running
// server, which holds bbolt's file lock.
//
// It is a front end beside bot: it may import commands, bot (for the
// bootstrap's result) and state, and nothing of deploy/. Only the machine's
// operator can reach the socket: it lives in a folder of mode 0700.
package control
