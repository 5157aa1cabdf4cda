package media

import (
	"errors"
	"sync"
)

// ErrNoPorts is returned when every RTP port pair of the range is in use.
var ErrNoPorts = errors.New("media: no free RTP port pair in the configured range")

// portPool hands out even RTP ports (RTCP on port+1) from an inclusive
// range. Freed ports go to the back of the queue so a port is not reused
// while stray packets of its previous call may still arrive.
type portPool struct {
	mu   sync.Mutex
	free []int // FIFO of even ports
}

func newPortPool(min, max int) *portPool {
	p := &portPool{}
	if min%2 != 0 {
		min++
	}
	for port := min; port+1 <= max; port += 2 {
		p.free = append(p.free, port)
	}
	return p
}

func (p *portPool) get() (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) == 0 {
		return 0, false
	}
	port := p.free[0]
	p.free = p.free[1:]
	return port, true
}

func (p *portPool) put(port int) {
	p.mu.Lock()
	p.free = append(p.free, port)
	p.mu.Unlock()
}

// available reports how many pairs are free.
func (p *portPool) available() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
