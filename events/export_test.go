package events

import (
	"encoding/json"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
)

// CommandViaSDK is Command as it was before the direct encoding: the data
// by encoding/json, the headers from the SDK's validated event. Tests hold
// Command to it.
func (e Encoder) CommandViaSDK(cmd engine.Command, at time.Time) (*kgo.Record, error) {
	data, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	return e.record(cmd.Tenant, cmd.ClusterID, cmd.ID, cmd.Type(), cmd.Subject, SchemaURL(cmd.Kind), at, data)
}
