//go:build clientgo

package benchreal

// clientGoImpl is ImplClientGo when this build has the client-go
// comparison (clientgo_off.go says why it is optional), else "".
const clientGoImpl = ImplClientGo
