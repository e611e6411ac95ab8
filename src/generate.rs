//! Config generators (design.md §3): CoreDNS and kube-dns stanzas, StatefulSet join lists and certificate SANs.
