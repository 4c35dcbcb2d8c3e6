/* Arrow IPC constants shared by the Relay Arrow writer and reader (Schema.fbs / Message.fbs ids).
 */
#ifndef RLY_SINK_ARROW_FORMAT_H
#define RLY_SINK_ARROW_FORMAT_H

/* Type union members (Schema.fbs). */
enum {
    RLY_AT_INT = 2,
    RLY_AT_FLOAT = 3,
    RLY_AT_UTF8 = 5,
    RLY_AT_BOOL = 6,
    RLY_AT_FSB = 15,
    RLY_AT_FSL = 16
};

/* MessageHeader union members and the metadata version written (V5). */
enum { RLY_AMSG_SCHEMA = 1, RLY_AMSG_RECORD_BATCH = 3, RLY_ARROW_V5 = 4 };

/* Field ids of the tables used. */
enum { RLY_FIELD_NAME = 0, RLY_FIELD_NULLABLE = 1, RLY_FIELD_TYPE_TYPE = 2, RLY_FIELD_TYPE = 3 };
enum { RLY_FIELD_CHILDREN = 5, RLY_FIELD_META = 6 };
enum { RLY_SCHEMA_FIELDS = 1, RLY_SCHEMA_META = 2 };
enum { RLY_MSG_VERSION = 0, RLY_MSG_HTYPE = 1, RLY_MSG_HEADER = 2, RLY_MSG_BODYLEN = 3 };
enum { RLY_RB_LENGTH = 0, RLY_RB_NODES = 1, RLY_RB_BUFFERS = 2 };
enum {
    RLY_FOOTER_VERSION = 0,
    RLY_FOOTER_SCHEMA = 1,
    RLY_FOOTER_DICTS = 2,
    RLY_FOOTER_BATCHES = 3
};

/* RLY_ARROW_FORMAT_VERSION is the value of the schema's relay.format key. */
#define RLY_ARROW_FORMAT_VERSION "2"

/* RLY_ARROW_TRAJ_EXT ends the name of the trajectory table paired with a steps file. */
#define RLY_ARROW_TRAJ_EXT ".traj.arrow"

#endif
