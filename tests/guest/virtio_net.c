/* virtio-net mode (virtio 1.2 §5.1): ARP for the host's tap address and wait for the
 * reply. Frames carry the 12-byte virtio_net_hdr (VERSION_1 always has num_buffers);
 * no offloads and no mergeable buffers, so each receive buffer holds a whole frame. */
#include "virtio.h"

#define NET_F_MAC (1ul << 5)
#define NET_HDR 12u
#define RX_BUF 2048u              /* >= 12 + 1514 */
#define RX_COUNT 16u
#define ETH_HLEN 14u
#define ARP_LEN 28u
#define FRAME_MIN 60u

struct net {
    struct virtio_dev dev;
    struct virtq rx, tx;
    uint8_t *rx_bufs;
    uint8_t *tx_buf;
    uint8_t mac[6];
    uint8_t host_ip[4], guest_ip[4];
};

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static int net_send_arp_request(struct net *n)
{
    uint8_t *f = n->tx_buf + NET_HDR;
    memset(n->tx_buf, 0, NET_HDR + FRAME_MIN);
    memset(f, 0xff, 6);                          /* broadcast */
    memcpy(f + 6, n->mac, 6);
    put16(f + 12, 0x0806);                       /* ARP */
    uint8_t *a = f + ETH_HLEN;
    put16(a, 1);                                 /* Ethernet */
    put16(a + 2, 0x0800);                        /* IPv4 */
    a[4] = 6, a[5] = 4;
    put16(a + 6, 1);                             /* request */
    memcpy(a + 8, n->mac, 6);
    memcpy(a + 14, n->guest_ip, 4);
    memcpy(a + 24, n->host_ip, 4);               /* target MAC (a + 18) stays zero */
    struct vbuf b = { (uint64_t)n->tx_buf, NET_HDR + FRAME_MIN, 0 };
    return virtq_transfer(&n->dev, &n->tx, &b, 1, 0, "net transmit");
}

/* 1 if the frame is an ARP reply from the host IP to us; its sender MAC in `from`. */
static int is_arp_reply(const struct net *n, const uint8_t *f, uint32_t len, uint8_t from[6])
{
    if (len < ETH_HLEN + ARP_LEN || get16(f + 12) != 0x0806)
        return 0;
    const uint8_t *a = f + ETH_HLEN;
    if (get16(a) != 1 || get16(a + 2) != 0x0800 || get16(a + 6) != 2 || memcmp(a + 14, n->host_ip, 4) ||
        memcmp(a + 24, n->guest_ip, 4))
        return 0;
    memcpy(from, a + 8, 6);
    return 1;
}

static int net_open(struct net *n)
{
    if (cmdline_ipv4("host_ip", n->host_ip) < 0 || cmdline_ipv4("guest_ip", n->guest_ip) < 0) {
        kprintf("TESTGUEST: FAIL net: need testguest.host_ip=a.b.c.d and testguest.guest_ip=a.b.c.d\n");
        return -1;
    }
    if (virtio_find(VIRTIO_ID_NET, 0, &n->dev) < 0 || virtio_init(&n->dev, NET_F_MAC) < 0 ||
        virtq_setup(&n->dev, &n->rx, 0, 64) < 0 || virtq_setup(&n->dev, &n->tx, 1, 64) < 0)
        return -1;
    if (!(n->dev.features & NET_F_MAC)) {
        kprintf("TESTGUEST: FAIL net: device does not offer VIRTIO_NET_F_MAC\n");
        return -1;
    }
    for (unsigned i = 0; i < 6; i++)            /* byte-wide fields: read the containing word */
        n->mac[i] = (uint8_t)(virtio_config_read32(&n->dev, i & ~3u) >> (8 * (i & 3)));
    n->rx_bufs = dma_alloc(RX_BUF * RX_COUNT);
    n->tx_buf = dma_alloc(RX_BUF);
    if (!n->rx_bufs || !n->tx_buf)
        return -1;
    for (unsigned i = 0; i < RX_COUNT; i++) {   /* one descriptor each: id i <-> buffer i */
        struct vbuf b = { (uint64_t)n->rx_bufs + i * RX_BUF, RX_BUF, 1 };
        virtq_add(&n->rx, &b, 1);
    }
    if (virtio_driver_ok(&n->dev) < 0)
        return -1;
    virtq_kick(&n->dev, &n->rx);
    return 0;
}

void run_virtio_net(void)
{
    struct net n;
    if (net_open(&n) < 0)
        return;
    kprintf("TESTGUEST: net mac %02x:%02x:%02x:%02x:%02x:%02x arp for %u.%u.%u.%u\n", n.mac[0], n.mac[1],
            n.mac[2], n.mac[3], n.mac[4], n.mac[5], n.host_ip[0], n.host_ip[1], n.host_ip[2], n.host_ip[3]);
    unsigned frames = 0;
    uint8_t from[6];
    /* Up to 5 requests, one a second: the first may go out before the host's side is up. */
    for (unsigned attempt = 0; attempt < 5; attempt++) {
        if (net_send_arp_request(&n) < 0)
            return;
        uint32_t id, len;
        while (virtq_poll(&n.rx, 1000, &id, &len)) {
            frames++;
            if (id >= RX_COUNT || len < NET_HDR || len > RX_BUF) {
                kprintf("TESTGUEST: FAIL net rx: used id %u len %u\n", id, len);
                return;
            }
            const uint8_t *f = n.rx_bufs + id * RX_BUF + NET_HDR;
            int got = is_arp_reply(&n, f, len - NET_HDR, from);
            /* The device may signal once for a burst: require the interrupt for the
             * first frame only, ack later ones when set. */
            if (frames == 1 && virtio_check_ack_irq(&n.dev, "net receive") < 0)
                return;
            uint32_t isr = vreg_read(&n.dev, VMMIO_INTERRUPT_STATUS);
            if (isr & 1)
                vreg_write(&n.dev, VMMIO_INTERRUPT_ACK, 1);
            if (got) {
                kprintf("TESTGUEST: net ok arp reply from %02x:%02x:%02x:%02x:%02x:%02x (%u frames received)\n",
                        from[0], from[1], from[2], from[3], from[4], from[5], frames);
                return;
            }
            virtq_repost(&n.rx, (uint16_t)id);
            virtq_kick(&n.dev, &n.rx);
        }
    }
    kprintf("TESTGUEST: FAIL net: no ARP reply from %u.%u.%u.%u in 5 s (%u other frames received)\n",
            n.host_ip[0], n.host_ip[1], n.host_ip[2], n.host_ip[3], frames);
}
