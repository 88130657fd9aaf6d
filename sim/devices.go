package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
)

// Real meetings repeat a few dozen devices and places, not one: each participant gets
// one of userAgents × sdkVersions device descriptions and one of places, chosen by its
// ID, so that the same participant always shows the same. The first of each is the
// documented example's.
var (
	userAgents = []userAgent{
		agent("Firefox", "115.0", "Linux", "desktop"),
		agent("Chrome", "120.0.0.0", "Windows", "desktop"),
		agent("Chrome", "120.0.0.0", "Mac OS", "desktop"),
		agent("Chrome", "119.0.0.0", "Windows", "desktop"),
		agent("Safari", "17.1", "Mac OS", "desktop"),
		agent("Edge", "120.0.0.0", "Windows", "desktop"),
		agent("Firefox", "120.0", "Windows", "desktop"),
		agent("Chrome", "120.0.6099.43", "Android", "mobile"),
		agent("Mobile Safari", "17.1", "iOS", "mobile"),
		agent("Samsung Internet", "23.0", "Android", "mobile"),
		agent("Chrome", "120.0.6099.50", "iOS", "tablet"),
		agent("Electron", "27.1.2", "Mac OS", "desktop"),
	}
	sdkVersions = []string{"0.3.29", "0.1.6", "0.2.4"}
	places      = []json.RawMessage{
		place("Surat", "Gujarat", "India"),
		place("Mumbai", "Maharashtra", "India"),
		place("Bengaluru", "Karnataka", "India"),
		place("Delhi", "Delhi", "India"),
		place("Pune", "Maharashtra", "India"),
		place("Ahmedabad", "Gujarat", "India"),
		place("Hyderabad", "Telangana", "India"),
		place("Chennai", "Tamil Nadu", "India"),
		place("Kolkata", "West Bengal", "India"),
		place("Singapore", "Central Singapore", "Singapore"),
		place("Dubai", "Dubai", "United Arab Emirates"),
		place("London", "England", "United Kingdom"),
		place("Manchester", "England", "United Kingdom"),
		place("Berlin", "Berlin", "Germany"),
		place("Munich", "Bavaria", "Germany"),
		place("Paris", "Île-de-France", "France"),
		place("Amsterdam", "North Holland", "Netherlands"),
		place("Madrid", "Madrid", "Spain"),
		place("New York", "New York", "United States"),
		place("San Francisco", "California", "United States"),
		place("Austin", "Texas", "United States"),
		place("Chicago", "Illinois", "United States"),
		place("Toronto", "Ontario", "Canada"),
		place("São Paulo", "São Paulo", "Brazil"),
		place("Mexico City", "Mexico City", "Mexico"),
		place("Lagos", "Lagos", "Nigeria"),
		place("Nairobi", "Nairobi County", "Kenya"),
		place("Sydney", "New South Wales", "Australia"),
		place("Tokyo", "Tokyo", "Japan"),
		place("Jakarta", "Jakarta", "Indonesia"),
	}
)

// userAgent is a browserUserAgent as the API writes it, and its platform's type.
type userAgent struct {
	json     json.RawMessage
	platform string
}

func agent(browser, version, os, platform string) userAgent {
	return userAgent{json.RawMessage(fmt.Sprintf(`{"browser":{"name":%q,"version":%q},"os":{"name":%q},"platform":{"type":%q}}`, browser, version, os, platform)), platform}
}

func place(city, region, country string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"city":%q,"region":%q,"country":%q}`, city, region, country))
}

// pick is participant id's choice among n.
func pick(id, what string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(what))
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}

// deviceOf is participant id's device description, with its sdkType.
func deviceOf(id, sdkType string) deviceInfo {
	ua := userAgents[pick(id, "agent", len(userAgents))]
	return deviceInfo{SDKType: sdkType, SDKVersion: sdkVersions[pick(id, "sdk", len(sdkVersions))],
		Platform: ua.platform, BrowserUserAgent: ua.json}
}

// placeOf is participant id's geoLocation.
func placeOf(id string) json.RawMessage { return places[pick(id, "place", len(places))] }
