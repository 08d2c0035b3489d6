# fixtures.sh: small generators for the binary files the catalogue's table
# cases feed etch (sourced by run_catalogue.sh before each case's `setup:`
# lines). Each writes one file with printf/head, so a case's setup line shows
# exactly which bytes are wrong.

# le N BYTES: N as a BYTES-byte little-endian integer (raw bytes on stdout)
le() {
    local n=$1 k
    for ((k = 0; k < $2; k++)); do
        printf "\\x$(printf %02x $((n & 255)))"
        n=$((n >> 8))
    done
}

# be32 N: N as a 4-byte big-endian integer (IDX dimensions)
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }

# npy FILE HEADER NBYTES [MAJOR]: a .npy file (version MAJOR.0, default 1)
# whose header dict is HEADER (written as given, no padding) followed by NBYTES
# zero bytes of data
npy() {
    local major=${4:-1}
    { printf '\x93NUMPY'; le "$major" 1; printf '\x00'
      if [ "$major" = 1 ]; then le ${#2} 2; else le ${#2} 4; fi
      printf '%s' "$2"; head -c "$3" /dev/zero; } >"$1"
}

# npy_f32 FILE SHAPE NBYTES: a well-formed little-endian f32 .npy of SHAPE
# (e.g. "(2, 4)") with NBYTES bytes of data
npy_f32() { npy "$1" "{'descr': '<f4', 'fortran_order': False, 'shape': $2, }" "$3"; }

# safetensors FILE JSON NBYTES: an 8-byte header length, the JSON header and
# NBYTES zero bytes of tensor data
safetensors() { { le ${#2} 8; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$1"; }

# tiny_weights FILE: the weights of models/tiny.etch (fc.weight f32[3,4],
# fc.bias f32[3]), all zero; cases edit a copy of this JSON
TINY_JSON='{"fc.weight":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]},"fc.bias":{"dtype":"F32","shape":[3],"data_offsets":[48,60]}}'
tiny_weights() { safetensors "$1" "$TINY_JSON" 60; }

# idx FILE TYPE RANK DIMS... -- NBYTES: an IDX file (magic 00 00 TYPE RANK,
# big-endian dims) followed by NBYTES data bytes (value 7)
idx() {
    local f=$1 type=$2 rank=$3 d
    shift 3
    { printf '\x00\x00'; le "$type" 1; le "$rank" 1
      while [ "$1" != -- ]; do be32 "$1"; shift; done
      head -c "$2" /dev/zero | tr '\0' '\7'; } >"$f"
}

# gz FILE IN: IN gzipped by hand as one stored (uncompressed) deflate block,
# so the bytes do not depend on the gzip version; the CRC-32/ISIZE trailer is
# gzip's own. Layout: 10-byte header, block byte 01, LEN, NLEN, data, trailer.
gz() {
    local n
    n=$(wc -c <"$2")
    { printf '\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff\x01'; le "$n" 2; le $((n ^ 0xffff)) 2
      cat "$2"; gzip -c <"$2" | tail -c 8; } >"$1"
}

# poke FILE OFFSET BYTES: overwrite bytes of FILE at OFFSET (BYTES as printf writes them)
poke() { printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
