package projections

import "github.com/go-json-experiment/json"

// DocumentAsJSON is a stored binary document as earlier versions stored it
// (JSON), for tests of reading those.
func DocumentAsJSON(raw []byte) ([]byte, error) {
	sp, err := decodeBinaryProjection(raw)
	if err != nil {
		return nil, err
	}
	return json.Marshal(&sp, json.Deterministic(true))
}
