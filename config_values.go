package main

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/internal/names"
)

// dockerName is the engine's rule for volume and container names; networks
// are held to it too, since they are named in the apps' Compose files.
var dockerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// emailLocal is the part before the @ that the certificate authorities and
// every mail system take: a subset of RFC 5322's, without quotes.
var emailLocal = regexp.MustCompile(`^[A-Za-z0-9._%+-]+$`)

// acmeEmail accepts a plain address, local@domain, whose domain passes the
// domain rule.
func acmeEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at < 1 || len(s) > 254 {
		return false
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return false
	}
	return emailLocal.MatchString(s[:at]) && names.Domain(strings.ToLower(s[at+1:])) == nil
}

// checkValues lists the problems of the values that end up in the apps'
// configuration files (the base domain, in WordPress's PHP and GitLab's
// Ruby among others), in Compose files and container specs, in Caddy's
// configuration or in Mattermost: each is held to the rule of where it goes,
// so that none can be read there as anything but a name.
func checkValues(c config) []string {
	var problems []string
	if err := names.BaseDomain(c.BaseDomain); err != nil {
		problems = append(problems, fmt.Sprintf("TOOLBOX_BASE_DOMAIN: %v", err))
	}
	for _, v := range []struct{ key, value string }{
		{"TOOLBOX_NETWORK", c.Network}, {"TOOLBOX_BOT_NETWORK", c.BotNetwork}, {"TOOLBOX_BACKUP_VOLUME", c.BackupVolume},
	} {
		if v.value != "" && !dockerName.MatchString(v.value) {
			problems = append(problems, fmt.Sprintf("%s=%q is not a Docker name: use letters, digits, '_', '.' and '-', starting with a letter or digit, 2 characters at least", v.key, v.value))
		}
	}
	if !model.IsValidTeamName(c.TeamName) || len(c.TeamName) > model.TeamNameMaxLength || model.IsReservedTeamName(c.TeamName) {
		problems = append(problems, fmt.Sprintf("TOOLBOX_TEAM=%q is not a Mattermost team name: use 2 to %d lowercase letters, digits and dashes, starting and ending with a letter or digit, not starting with a reserved word such as admin, api or help", c.TeamName, model.TeamNameMaxLength))
	}
	if !model.IsValidChannelIdentifier(c.ChannelName) || len(c.ChannelName) > model.ChannelNameMaxLength {
		problems = append(problems, fmt.Sprintf("TOOLBOX_CHANNEL=%q is not a Mattermost channel name: use up to %d lowercase letters, digits, dashes and underscores, starting with a letter or digit", c.ChannelName, model.ChannelNameMaxLength))
	}
	if !model.IsValidUsername(c.AdminUser) {
		problems = append(problems, fmt.Sprintf("TOOLBOX_MM_ADMIN_USER=%q is not a Mattermost user name: use up to %d lowercase letters, digits, '.', '-' and '_' (not all, channel, matterbot or system)", c.AdminUser, model.UserNameMaxLength))
	}
	if c.ACMEEmail != "" && !acmeEmail(c.ACMEEmail) {
		problems = append(problems, fmt.Sprintf("TOOLBOX_ACME_EMAIL=%q is not an e-mail address: give the address alone, like ops@example.org (letters, digits, '.', '_', '%%', '+' and '-' before the @, a domain name after)", c.ACMEEmail))
	}
	for _, v := range []struct{ key, value string }{
		{"TOOLBOX_IMAGE", c.Image}, {"TOOLBOX_CADDY_IMAGE", c.CaddyImage}, {"TOOLBOX_RESTIC_IMAGE", c.ResticImage},
	} {
		if v.value == "" {
			continue
		}
		if _, err := reference.ParseNormalizedNamed(v.value); err != nil {
			problems = append(problems, fmt.Sprintf("%s=%q is not an image reference like caddy:2.11.9 or registry.example.org/team/image@sha256:…: %v", v.key, v.value, err))
		}
	}
	return problems
}
