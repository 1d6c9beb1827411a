package poller

import (
	"testing"

	"github.com/monitord/monitord/internal/proxy"
)

// TestPutListingClears: a pooled items array holds no item, up to its
// capacity (a failed listing may have left items past its length), so it
// pins no page of text of the poll that used it.
func TestPutListingClears(t *testing.T) {
	arr := make([]proxy.Interaction, 8)
	for i := range arr {
		arr[i] = proxy.Interaction{SID: "KI" + string(rune('a'+i)), Data: "body"}
	}
	putListing(arr[:3]) // three items listed, five more left by an error
	for i, it := range arr {
		if it != (proxy.Interaction{}) {
			t.Fatalf("item %d still %+v after putListing", i, it)
		}
	}

	huge := make([]proxy.Interaction, 1, maxPooledItems+1)
	huge[0].SID = "KIx"
	putListing(huge)
	if huge[0].SID != "KIx" {
		t.Fatal("an array over maxPooledItems was cleared, so it was pooled")
	}
}
