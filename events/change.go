package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// Origin locates the input record that caused a change.
type Origin struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// ClusterChanged is the data of an io.leadconv.cluster.changed.v1 event: the
// delta of one cluster version, for consumers that mirror clusters. Members
// are refs only: record contents stay out of the delta stream.
type ClusterChanged struct {
	Tenant     string       `json:"tenant"`
	ClusterID  string       `json:"cluster_id"`
	Version    int64        `json:"cluster_version"`
	Members    []record.Ref `json:"members"`
	Before     []record.Ref `json:"before"`
	Trigger    record.Ref   `json:"trigger"`
	Origin     *Origin      `json:"origin,omitempty"`
	MergedFrom []string     `json:"merged_from,omitempty"`
	MergedInto string       `json:"merged_into,omitempty"`
	SplitInto  []string     `json:"split_into,omitempty"`
	SplitFrom  string       `json:"split_from,omitempty"`
	Removed    bool         `json:"removed,omitempty"`
}

// NewClusterChanged builds the delta of c.
func NewClusterChanged(c matcher.Change, origin *Origin) ClusterChanged {
	members := make([]record.Ref, len(c.Members))
	for i := range c.Members {
		members[i] = c.Members[i].Ref()
	}
	before := c.Before
	if before == nil {
		before = []record.Ref{}
	}
	return ClusterChanged{
		Tenant: c.Tenant, ClusterID: c.ClusterID, Version: c.Version,
		Members: members, Before: before, Trigger: c.Trigger, Origin: origin,
		MergedFrom: c.MergedFrom, MergedInto: c.MergedInto, SplitInto: c.SplitInto, SplitFrom: c.SplitFrom,
		Removed: c.Removed,
	}
}

// ClusterChangedID is the deterministic event id of a cluster version.
func ClusterChangedID(clusterID string, version int64) string {
	return clusterID + "@" + strconv.FormatInt(version, 10)
}

// ClusterChanged encodes d as a CloudEvent record; at is the triggering
// event's modified_at.
func (e Encoder) ClusterChanged(d ClusterChanged, at time.Time) (*kgo.Record, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("events: encode cluster change %s: %w", d.ClusterID, err)
	}
	return e.record(d.Tenant, d.ClusterID, ClusterChangedID(d.ClusterID, d.Version), TypeClusterChanged,
		d.ClusterID, SchemaURL("cluster.changed"), at, data)
}
