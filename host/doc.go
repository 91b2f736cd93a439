// Package host is the toolbox's own footprint on a machine's engine: `up`
// and `down`, the bot's and the proxy's containers, and the bot's image
// (host/images builds the other images where none can be pulled). Later, the
// cloud VM that holds it all.
//
// It composes the deploy adapters (deploy/docker, deploy/proxy,
// deploy/stack), as commands does through interfaces; it imports neither bot
// nor commands, and only main imports it.
package host
