package bot

import (
	"errors"
	"net/url"
)

// maxFormFields bounds the number of fields; Mattermost sends about fifteen.
const maxFormFields = 200

var errTooManyFields = errors.New("too many form fields")

// parseForm decodes an url-encoded body with a bound on its field count.
func parseForm(body []byte) (url.Values, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	if len(form) > maxFormFields {
		return nil, errTooManyFields
	}
	return form, nil
}
