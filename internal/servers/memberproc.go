package servers

import (
	"fmt"
	"os/exec"
)

// memberProc is the process of one member of a cluster of test servers
// (EtcdCluster, ConsulCluster): killed, started again and paused by the
// cluster, whose lock guards it.
type memberProc struct {
	cmd    *exec.Cmd  // nil while the member is down
	exited chan error // receives cmd's exit status once
	paused bool
}

// kill SIGKILLs the process (paused too) and waits for it to exit; a
// member that is down is left as it is.
func (p *memberProc) kill() {
	if p.cmd == nil {
		return
	}
	killServer(p.cmd)
	<-p.exited
	p.cmd, p.exited, p.paused = nil, nil, false
}

// pause stops (SIGSTOP) or continues (SIGCONT) the process of the member
// named what; asking for the state it is in does nothing.
func (p *memberProc) pause(pause bool, what string) error {
	if p.cmd == nil {
		return fmt.Errorf("servers: %s is down", what)
	}
	if p.paused == pause {
		return nil
	}
	if err := pauseProcess(p.cmd, pause); err != nil {
		return fmt.Errorf("servers: pause/resume %s: %w", what, err)
	}
	p.paused = pause
	return nil
}
