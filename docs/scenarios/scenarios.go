// Package scenarios holds the example simulator scenarios, embedded so that
// `leasehold sim NAME` runs one without its file.
package scenarios

import "embed"

// FS holds the *.yaml scenarios of this folder.
//
//go:embed *.yaml
var FS embed.FS
