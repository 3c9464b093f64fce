package memory

import "github.com/leasehold-go/leasehold/elector"

var _ elector.Remembering = (*Backend)(nil)

// NeverForgets reports true: the store lives in the candidates' process and
// loses a record only when a test tells it to (Delete, and the simulator's
// store faults, which drive the Machine directly and decide for themselves).
func (b *Backend) NeverForgets() bool { return true }
