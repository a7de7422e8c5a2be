-- Operators' release decisions about connector versions — approval of wider
-- capabilities, staged rollout, automatic rollback — so every node resolves
-- a connection to the same version. One row per `name@version`, the
-- decision as JSON (`registry::Release`); a row is never needed for a
-- version with no decision.

CREATE TABLE connector_releases (
    name    text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    release text NOT NULL,
    PRIMARY KEY (name, version)
);
