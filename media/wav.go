package media

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

const (
	wavFormatPCM        = 1
	wavFormatExtensible = 0xFFFE // the real format is in the chunk's subformat
	// maxWAVSamples bounds what ReadWAV keeps in memory: 10 minutes.
	maxWAVSamples = 10 * 60 * G711Rate
)

// ReadWAV reads a RIFF/WAVE file of 8 kHz 16-bit mono PCM and returns its
// samples; any other format is an error that says what the file holds.
// Chunks other than "fmt " and "data" (LIST, fact, ...) are skipped. A data
// chunk shorter than its header claims, as streaming encoders write it, is
// read to its end. Files longer than 10 minutes are refused.
func ReadWAV(r io.Reader) ([]int16, error) {
	var header [12]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, errors.New("wav: not a RIFF/WAVE file: too short")
	}
	if string(header[0:4]) != "RIFF" || string(header[8:12]) != "WAVE" {
		return nil, errors.New("wav: not a RIFF/WAVE file")
	}
	haveFormat := false
	for {
		var chunk [8]byte
		if _, err := io.ReadFull(r, chunk[:]); err != nil {
			switch {
			case err != io.EOF:
				return nil, fmt.Errorf("wav: truncated chunk header: %w", err)
			case !haveFormat:
				return nil, errors.New("wav: no fmt chunk")
			default:
				return nil, errors.New("wav: no data chunk")
			}
		}
		id, size := string(chunk[:4]), binary.LittleEndian.Uint32(chunk[4:])
		switch id {
		case "fmt ":
			if size < 16 || size > 256 {
				return nil, fmt.Errorf("wav: fmt chunk of %d bytes, want 16 to 256", size)
			}
			body := make([]byte, size+size%2) // chunks are padded to even sizes
			if _, err := io.ReadFull(r, body); err != nil {
				return nil, errors.New("wav: truncated fmt chunk")
			}
			if err := checkWAVFormat(body[:size]); err != nil {
				return nil, err
			}
			haveFormat = true
		case "data":
			if !haveFormat {
				return nil, errors.New("wav: data chunk before the fmt chunk")
			}
			return readWAVSamples(r, size)
		default:
			skip := int64(size) + int64(size%2)
			if _, err := io.CopyN(io.Discard, r, skip); err != nil {
				return nil, fmt.Errorf("wav: truncated %q chunk", id)
			}
		}
	}
}

// checkWAVFormat accepts only what G.711 is made from without resampling.
func checkWAVFormat(fmtChunk []byte) error {
	le := binary.LittleEndian
	format := le.Uint16(fmtChunk[0:])
	channels := le.Uint16(fmtChunk[2:])
	rate := le.Uint32(fmtChunk[4:])
	bits := le.Uint16(fmtChunk[14:])
	if format == wavFormatExtensible && len(fmtChunk) >= 40 {
		format = le.Uint16(fmtChunk[24:]) // the subformat GUID starts with the format code
	}
	if format == wavFormatPCM && rate == G711Rate && bits == 16 && channels == 1 {
		return nil
	}
	got := ""
	switch format {
	case wavFormatPCM:
	case 3:
		got = "IEEE float (format 3) "
	case 6:
		got = "A-law (format 6) "
	case 7:
		got = "μ-law (format 7) "
	default:
		got = fmt.Sprintf("format %d ", format)
	}
	plural := "s"
	if channels == 1 {
		plural = ""
	}
	got += fmt.Sprintf("%d Hz %d-bit %d channel%s", rate, bits, channels, plural)
	return fmt.Errorf("wav: want 8 kHz 16-bit mono PCM, got %s", got)
}

func readWAVSamples(r io.Reader, size uint32) ([]int16, error) {
	const maxBytes = 2 * maxWAVSamples
	data, err := io.ReadAll(io.LimitReader(r, min(int64(size), maxBytes+1)))
	if err != nil {
		return nil, fmt.Errorf("wav: reading data: %w", err)
	}
	if len(data) > maxBytes {
		return nil, fmt.Errorf("wav: longer than %d minutes", maxWAVSamples/G711Rate/60)
	}
	samples := make([]int16, len(data)/2) // an odd last byte is no sample
	for i := range samples {
		samples[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
	}
	return samples, nil
}

// readWAVFile reads a WAV file with ReadWAV; errors name the file.
func readWAVFile(path string) ([]int16, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	samples, err := ReadWAV(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return samples, nil
}

// WriteWAV writes samples as a RIFF/WAVE file of 8 kHz 16-bit mono PCM.
func WriteWAV(w io.Writer, samples []int16) error {
	const headerSize = 44
	dataSize := 2 * len(samples)
	if int64(dataSize) > math.MaxUint32-headerSize {
		return errors.New("wav: too many samples for a WAV file")
	}
	le := binary.LittleEndian
	buf := make([]byte, 0, headerSize+dataSize)
	buf = append(buf, "RIFF"...)
	buf = le.AppendUint32(buf, uint32(headerSize-8+dataSize))
	buf = append(buf, "WAVEfmt "...)
	buf = le.AppendUint32(buf, 16)
	buf = le.AppendUint16(buf, wavFormatPCM)
	buf = le.AppendUint16(buf, 1) // channels
	buf = le.AppendUint32(buf, G711Rate)
	buf = le.AppendUint32(buf, 2*G711Rate) // bytes a second
	buf = le.AppendUint16(buf, 2)          // bytes a sample frame
	buf = le.AppendUint16(buf, 16)         // bits a sample
	buf = append(buf, "data"...)
	buf = le.AppendUint32(buf, uint32(dataSize))
	for _, s := range samples {
		buf = le.AppendUint16(buf, uint16(s))
	}
	_, err := w.Write(buf)
	return err
}
