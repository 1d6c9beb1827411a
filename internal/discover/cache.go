package discover

import "slices"

// Participants returns what discovery knows of serviceSID's live sessions:
// the participant SIDs of each, by session SID (nil without an entry for
// it). Kept across a restart (RestoreParticipants), it spares the first
// refresh a participants list per session: 10,000 requests, six minutes
// of a Service's budget, at 10,000 sessions.
func (d *Discoverer) Participants(serviceSID string) map[string][]string {
	for _, st := range d.entries {
		if st.entry.ServiceSID != serviceSID {
			continue
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		out := make(map[string][]string, len(st.sessions))
		for sid, c := range st.sessions {
			out[sid] = slices.Clone(c.participants)
		}
		return out
	}
	return nil
}

// RestoreParticipants takes what Participants returned in an earlier run,
// before the entry's first refresh (later it does nothing: what a refresh
// listed is newer). The first refresh then lists only the participants of
// sessions it does not know, or knows with fewer than two participants;
// the others are listed again on the entry's usual rhythm
// (ParticipantRefreshEvery), spread over the refreshes as after a cold
// start. A session no longer live is dropped by the first refresh.
func (d *Discoverer) RestoreParticipants(serviceSID string, bySession map[string][]string) {
	for _, st := range d.entries {
		if st.entry.ServiceSID != serviceSID {
			continue
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.refreshes > 0 {
			return
		}
		for sid, ps := range bySession {
			st.sessions[sid] = &sessionCache{participants: slices.Clone(ps),
				listedAt: -phase(sid, st.entry.ParticipantRefreshEvery)}
		}
		return
	}
}
