package discover

// isNotFound reports whether err is the API's 404: the session was deleted
// between the sessions list and its participants list.
func isNotFound(err error) bool { return false } // TODO: twilio.IsNotFound once the client lands
