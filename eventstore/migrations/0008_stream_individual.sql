-- Whether a customer is a person (kind individual): then its name and region
-- are personal data and the store seals them (domain.personalFields). The
-- flag follows the latest kind stated by the stream's profile events.
ALTER TABLE streams ADD COLUMN individual boolean NOT NULL DEFAULT false;

UPDATE streams s SET individual = true
WHERE (SELECT e.data->>'kind' FROM events e
       WHERE e.stream_id = s.stream_id
         AND e.type IN ('CustomerRegistered', 'CustomerProfileUpdated')
         AND e.data->>'kind' IS NOT NULL
       ORDER BY e.version DESC LIMIT 1) = 'individual';
