package trace

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// PcapContentType is the media type of a pcap file.
const PcapContentType = "application/vnd.tcpdump.pcap"

// WritePcap writes messages as a pcap file: each one an Ethernet frame with
// an IPv4 or IPv6 packet from its source to its destination address, over
// UDP, or over TCP (TLS is written as the TCP it carries) with sequence
// numbers that run on per direction, so that Wireshark, tshark and sngrep
// dissect SIP and SDP. Messages are redacted as in Entries.
func WritePcap(w io.Writer, msgs []Message) error {
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return err
	}
	seqs := map[string]uint32{} // next TCP sequence number per direction
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	for i := range msgs {
		m := &msgs[i]
		src, err := netip.ParseAddrPort(m.Src)
		if err != nil {
			return fmt.Errorf("message %d: source %q: %w", i, m.Src, err)
		}
		dst, err := netip.ParseAddrPort(m.Dst)
		if err != nil {
			return fmt.Errorf("message %d: destination %q: %w", i, m.Dst, err)
		}
		src, dst = netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
		var ip gopacket.NetworkLayer
		var ipLayer gopacket.SerializableLayer
		proto := layers.IPProtocolUDP
		if !strings.EqualFold(m.Transport, "UDP") {
			proto = layers.IPProtocolTCP
		}
		if src.Addr().Is4() && dst.Addr().Is4() {
			eth.EthernetType = layers.EthernetTypeIPv4
			v4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, Flags: layers.IPv4DontFragment,
				SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
			ip, ipLayer = v4, v4
		} else {
			eth.EthernetType = layers.EthernetTypeIPv6
			s16, d16 := src.Addr().As16(), dst.Addr().As16()
			v6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: s16[:], DstIP: d16[:]}
			ip, ipLayer = v6, v6
		}
		payload := gopacket.Payload(Redact(m.Raw))
		var transport gopacket.SerializableLayer
		if proto == layers.IPProtocolUDP {
			udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
			_ = udp.SetNetworkLayerForChecksum(ip)
			transport = udp
		} else {
			flow := src.String() + ">" + dst.String()
			seq, ok := seqs[flow]
			if !ok {
				seq = 1
			}
			seqs[flow] = seq + uint32(len(payload))
			ack, ok := seqs[dst.String()+">"+src.String()]
			if !ok {
				ack = 1
			}
			tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
				Seq: seq, Ack: ack, ACK: true, PSH: true, Window: 65535}
			_ = tcp.SetNetworkLayerForChecksum(ip)
			transport = tcp
		}
		if err := gopacket.SerializeLayers(buf, opts, eth, ipLayer, transport, payload); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		data := buf.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: m.Time, CaptureLength: len(data), Length: len(data)}
		if err := pw.WritePacket(ci, data); err != nil {
			return err
		}
	}
	return nil
}
