package discover

import "github.com/monitord/monitord/internal/twilio"

// isNotFound reports whether err is the API's 404: the session was deleted
// between the sessions list and its participants list.
var isNotFound = twilio.IsNotFound
