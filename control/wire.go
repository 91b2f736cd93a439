package control

// The socket speaks JSON over HTTP: one request type per call.

type doRequest struct {
	Text string `json:"text"`
	Yes  bool   `json:"yes"`
}

// Reply is the outcome of a command run as the operator.
type Reply struct {
	Text string `json:"text"`
	// Failed is set when the command (or the job it started) failed.
	Failed bool `json:"failed,omitempty"`
}

// bootstrapReply carries the bootstrap's outcome over the socket: the only way
// the first admin's password leaves the server, once.
type bootstrapReply struct {
	Changes       []string `json:"changes"`
	AdminUsername string   `json:"admin_username"`
	AdminPassword string   `json:"admin_password,omitempty"`
	Error         string   `json:"error,omitempty"`
}

// keyReply answers the state's key rotation (the new key's id, never the
// key) and the forgetting of the first admin's password.
type keyReply struct {
	KeyID string `json:"key_id,omitempty"`
	Error string `json:"error,omitempty"`
}
