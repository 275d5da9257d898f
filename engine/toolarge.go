package engine

import (
	"slices"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// TooLargeReview is the command that replaces a plan one of whose
// commands encodes to size bytes, over the producer's limit: a single
// review.requested (ReasonCommandTooLarge) of the cluster naming every
// record the plan acted on, with the plan's explain block. Its id is
// deterministic like every command's. cmds must not be empty.
func TooLargeReview(cmds []Command, size, limit int) Command {
	first := &cmds[0]
	var refs []record.Ref
	for i := range cmds {
		switch d := cmds[i].Data.(type) {
		case *LeadConvert:
			refs = append(refs, record.Ref{Object: record.Lead, ID: d.LeadID})
			if d.Contact.ID != "" {
				refs = append(refs, record.Ref{Object: record.Contact, ID: d.Contact.ID})
			}
		case *RecordsMerge:
			refs = append(refs, record.Ref{Object: d.Object, ID: d.Master.ID})
			for _, id := range d.MergedIDs {
				refs = append(refs, record.Ref{Object: d.Object, ID: id})
			}
			for _, id := range d.MergedFromLeads {
				refs = append(refs, record.Ref{Object: record.Lead, ID: id})
			}
		case *ConversionFailed:
			refs = append(refs, d.Records...)
		case *ReviewRequested:
			refs = append(refs, d.Records...)
		}
	}
	refs = slices.DeleteFunc(refs, func(r record.Ref) bool { return r.ID == "" })
	slices.SortFunc(refs, func(a, b record.Ref) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(string(a.Object), string(b.Object))
	})
	c := Command{
		Kind: KindReviewRequested, Tenant: first.Tenant, ClusterID: first.ClusterID, ClusterVersion: first.ClusterVersion,
		Subject: first.ClusterID, Explain: first.Explain,
		Data: &ReviewRequested{Reason: ReasonCommandTooLarge, Records: slices.Compact(refs), Size: size, Limit: limit},
	}
	var hx [idLen]byte
	commandID(&hx, &c)
	c.ID = string(hx[:])
	return c
}
