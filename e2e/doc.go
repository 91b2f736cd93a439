// Package e2e holds the end-to-end tests: the toolbox binary against a real
// Mattermost server (and, for `toolbox up`, the real Docker engine).
package e2e
