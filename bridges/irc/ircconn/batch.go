package ircconn

// Event is what a Conn delivers: a line outside any batch, or a batch that
// has ended, with every line and nested batch it grouped. Exactly one of
// Message and Batch is set.
type Event struct {
	Message *Message
	Batch   *Batch
}

// Batch is an IRCv3 batch (BATCH +ref type params… … BATCH -ref).
type Batch struct {
	Ref    string
	Type   string   // "chathistory", "netjoin", "labeled-response"…
	Params []string // the parameters after the type (the target of a chathistory batch)
	Start  *Message // the BATCH +ref line, with its tags (label, time…)
	Items  []Event  // the lines and nested batches, in the order received

	parent *Batch
}

// Messages returns every line of the batch and its nested batches, in order.
func (b *Batch) Messages() []*Message {
	var out []*Message
	for _, it := range b.Items {
		if it.Message != nil {
			out = append(out, it.Message)
		} else if it.Batch != nil {
			out = append(out, it.Batch.Messages()...)
		}
	}
	return out
}

// Find returns the batch itself or the first nested batch of type typ, or nil.
func (b *Batch) Find(typ string) *Batch {
	if b == nil {
		return nil
	}
	if b.Type == typ {
		return b
	}
	for _, it := range b.Items {
		if f := it.Batch.Find(typ); f != nil {
			return f
		}
	}
	return nil
}
